"""Uniform noise for the layers that sample every step (L0 gates, targeted dropout).

`keras.random.uniform` calls `tf.random.stateless_uniform` with alg="auto_select", which
XLA on CPU compiles to a generator about 100x slower than Philox (115 ms against 1 ms for a
784 x 300 draw on 2 cores): LeNet-300-100 with one gate per weight trained at 620 ms a step.
So this one function reaches past Keras to TensorFlow (tflth's only backend) and asks for
Philox, which runs at the same speed with and without XLA. Seeds still come from a Keras
`SeedGenerator`, so the draws are saved and resumed with the model like any Keras noise.
"""
import tensorflow as tf
from keras import ops


def uniform(shape, seed, dtype="float32"):
    """U[0, 1) noise of `shape`. `seed`: a keras.random.SeedGenerator (each call advances it) or
    an int (the same draws every call)."""
    seed = [int(seed), 0] if isinstance(seed, int) else ops.cast(seed.next(), "int32")
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype, alg="philox")
