"""Milliseconds per training step of Bayesian dense layers against plain Dense on LeNet-300-100, side by side.

    python tools/bench_bayes.py                             # 500 steps per fit, 5 rounds, XLA
    python tools/bench_bayes.py --no_jit                    # the same without XLA
    python tools/bench_bayes.py --steps 200 --rounds 1      # a smoke run

Models, all `tflth.models.lenet_300_100`, batch 100 (as sparse variational dropout trains),
Adam 1e-3, compiled by `tflth.engine.compile_model` (XLA unless --no_jit,
`--steps_per_execution` steps per call):

  plain             family="plain" (keras.layers.Dense), the reference;
  masked            family="masked" (MaskedDense);
  flipout           family="flipout" (DenseFlipout), prior Normal(), dataset_size=55000;
  reparam           family="reparam" (DenseReparameterization), the same prior;
  local_reparam     family="local_reparam" (local_reparameterization=True), the same prior;
  local_reparam_lu  local_reparam with the LogUniform prior: sparse variational dropout;
  plain_noise       plain, whose step also draws the reparameterization estimator's noise (one
                    tflth.ops.noise.normal per kernel, 266,200 normals) and adds 0 x their sum to
                    the loss: the cost of the noise alone, a floor under reparam's ratio;
  flipout_floor     Dense layers computing Flipout's arithmetic and nothing more: x W +
                    ((x * s_in) (sigma * eps)) * s_out, sigma a trainable weight per kernel
                    weight (Adam updates it like the posterior's scale), eps one normal per
                    weight, s_in and s_out signs per example (as DenseFlipout draws them); no
                    softplus and no KL: a floor under flipout's ratio.

Every model trains on the same in-memory stream (`tflth.engine.train_stream` over random
uint8 MNIST-shaped images). After one warm-up fit each (tracing, XLA), the models take turns,
one timed `model.fit` of --steps steps each, for --rounds rounds (plain, masked, flipout, ...),
so that machine noise hits them alike. The report gives per model the median ms/step and the
ratio to plain in each round and its median, by wall clock and by the process's CPU time (the
steadier measure when other jobs share the machine).
Targets: flipout / plain <= 2.5 (two matmuls), reparam / plain <= 1.6.
"""
import sys

import _bench

LENET_KERNELS = ((784, 300), (300, 100), (100, 10))


def plain_with_noise():
    """LeNet-300-100 (plain) behind a layer that draws one normal per weight each training step."""
    import keras

    import tflth
    from tflth.ops import noise

    class DrawNoise(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.seed_generator = keras.random.SeedGenerator(0)

        def call(self, x, training=None):
            if training:  # 0 x the sum: XLA does not fold a float product with 0 away (NaN, inf)
                self.add_loss(0.0 * sum(keras.ops.sum(noise.normal(s, self.seed_generator)) for s in LENET_KERNELS))
            return x

    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, tflth.models.lenet_300_100(family="plain")(DrawNoise()(inputs)))


def flipout_floor():
    """LeNet-300-100 of Dense layers that add Flipout's perturbation, sigma * eps, in training."""
    import keras

    from tflth.ops import noise
    from tflth.ops import variational as vi

    class FlipoutArithmetic(keras.layers.Dense):
        def build(self, input_shape):
            super().build(input_shape)
            self.sigma = self.add_weight(shape=self.kernel.shape, initializer=keras.initializers.Constant(1e-3))
            self.seed_generator = keras.random.SeedGenerator(0)

        def call(self, x, training=None):
            y = keras.ops.matmul(x, self.kernel)
            if training:
                signs = lambda t: vi.signs(noise.uniform(keras.ops.shape(t), self.seed_generator))  # noqa: E731
                flipped = keras.ops.matmul(x * signs(x), self.sigma * noise.normal(self.kernel.shape, self.seed_generator))
                y = y + flipped * signs(flipped)
            return self.activation(y + self.bias)

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    for units in (300, 100):
        x = FlipoutArithmetic(units, activation="relu", kernel_initializer="glorot_normal")(x)
    return keras.Model(inputs, FlipoutArithmetic(10, kernel_initializer="glorot_normal")(x))


DATASET_SIZE = 55000
MODELS = {"plain": dict(family="plain"),
          "masked": dict(family="masked"),
          "flipout": dict(family="flipout", prior="normal", dataset_size=DATASET_SIZE),
          "reparam": dict(family="reparam", prior="normal", dataset_size=DATASET_SIZE),
          "local_reparam": dict(family="local_reparam", prior="normal", dataset_size=DATASET_SIZE),
          "local_reparam_lu": dict(family="local_reparam", prior="log_uniform", dataset_size=DATASET_SIZE),
          "plain_noise": plain_with_noise,
          "flipout_floor": flipout_floor}
TARGETS = {"flipout": 2.5, "reparam": 1.6}


def main(argv=None):
    args, names, median_ratio, write = _bench.run(argv, __doc__.split("\n")[0], MODELS, "plain",
                                                  "runs/bench_bayes.json", steps=500, rounds=5)
    print()
    for name, target in TARGETS.items():
        if name in names:
            wall, cpu = median_ratio["wall"][name], median_ratio["cpu"][name]
            print(f"{name} / plain = {wall:.2f} wall ({'met' if wall <= target else 'not met'}), {cpu:.2f} CPU time "
                  f"({'met' if cpu <= target else 'not met'}); target <= {target}")
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
