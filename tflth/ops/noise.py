"""Noise for the layers that sample every step (L0 gates, targeted dropout, Bayesian weights).

`keras.random.uniform` calls `tf.random.stateless_uniform` with alg="auto_select", which
XLA on CPU compiles to a generator about 100x slower than Philox (115 ms against 1 ms for a
784 x 300 draw on 2 cores): LeNet-300-100 with one gate per weight trained at 620 ms a step.
So this one function reaches past Keras to TensorFlow (tflth's only backend) and names the
generator: ThreeFry where XLA compiles the step, Philox elsewhere. XLA compiles Philox to
element-wise code that it fuses into, and so recomputes in, every consumer of the draw (the
forward pass and each gradient that reads it): a training step of one 784 x 300 layer with a gate
per weight took 11.6 ms of CPU with Philox, 4.6 with ThreeFry, 3.8 with the noise given as an
input. XLA draws ThreeFry once; TensorFlow has no ThreeFry kernel outside XLA, where Philox
costs no more than elsewhere. The two generators give different draws, so a training with XLA
and one without differ (each is reproducible; a training's progress records `SCHEME`). Seeds
still come from a Keras `SeedGenerator`, so the draws are saved and resumed with the model like
any Keras noise. The choice is made where a function is traced: a tf.function of your own
first traced inside an XLA-compiled one and then called without XLA fails ("counter must be a
vector with length at least 2"); Keras' fit, evaluate and predict trace each function in its
own compilation. ThreeFry was measured on CPU; on GPUs and TPUs under XLA it is used too,
unmeasured.
"""
import math
import zlib

import keras
import tensorflow as tf
from keras import ops

from tflth import internals
from tflth.arguments import is_integer


# Which generators `uniform` uses, saved with a training's progress (tflth.engine.loop): 1, Philox
# everywhere (tflth before ThreeFry); 2, ThreeFry where XLA compiles the step and Philox elsewhere.
SCHEME = 2


def uniform(shape, seed, dtype="float32"):
    """U[0, 1) noise of `shape`. `seed`: a keras.random.SeedGenerator (each call advances it) or
    an int (the same draws every call)."""
    seed = [int(seed), 0] if is_integer(seed) else ops.cast(seed.next(), "int32")
    alg = "threefry" if internals.xla_compiling() else "philox"
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype, alg=alg)


def normal(shape, seed, dtype="float32"):
    """N(0, 1) noise of `shape`: the inverse normal CDF of `uniform` noise, sqrt(2) erfinv(2u - 1),
    an exact transform. XLA compiles it to half the time of TensorFlow's Box-Muller normals
    (`stateless_normal`), which cost a Bayesian layer more than its matmul on CPU. u's 2^23
    float32 values are shifted half a step so that 2u - 1 is symmetric and never +-1 (|x| < 5.3)."""
    u = uniform(shape, seed)  # float32: the shift is float32's step (erfinv has no float16 CPU kernel)
    return ops.cast(math.sqrt(2.0) * tf.math.erfinv(2.0 * u - (1.0 - 2.0 ** -23)), dtype)


def layer_seed_generator(seed, name):
    """A layer's SeedGenerator: a model function passes one `seed` to every layer, and mixing in
    the layer's name keeps their noise apart (None: drawn from Keras' global seed)."""
    return keras.random.SeedGenerator(None if seed is None else (seed ^ zlib.crc32(name.encode())) & 0x7FFFFFFF)
