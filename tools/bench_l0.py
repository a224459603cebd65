"""Milliseconds per training step of L0Dense against MaskedDense on LeNet-300-100, side by side.

    python tools/bench_l0.py                                # 2,000 steps per fit, 5 rounds, XLA
    python tools/bench_l0.py --no_jit                       # the same without XLA
    python tools/bench_l0.py --steps 200 --rounds 1         # a smoke run

Models, all `tflth.models.lenet_300_100`, batch 100, Adam 1e-3, compiled by
`tflth.engine.compile_model` (XLA unless --no_jit, `--steps_per_execution` steps per call):

  masked       family="masked" (MaskedDense), the reference;
  l0_neuron    family="l0", gates="neuron", l0_lambda=0.1, dataset_size=55000 (the paper's MNIST
               L0 setup: one gate per input neuron);
  l0_weight    the same with gates="weight": one gate per weight, so expected to be slower.

Every model trains on the same in-memory stream (`tflth.engine.train_stream` over random
uint8 MNIST-shaped images). After one warm-up fit each (tracing, XLA), the models take turns,
one timed `model.fit` of --steps steps each, for --rounds rounds (masked, l0_neuron, l0_weight,
masked, ...), so that machine noise hits them alike. The report gives per model the median
ms/step and the ratio to masked in each round and its median, by wall clock and by the process's
CPU time (the steadier measure when other jobs share the machine).
Target: l0_neuron / masked <= 1.3 (wall clock).
"""
import sys

import _bench

MODELS = {"masked": dict(family="masked"),
          "l0_neuron": dict(family="l0", gates="neuron", l0_lambda=0.1, dataset_size=55000),
          "l0_weight": dict(family="l0", gates="weight", l0_lambda=0.1, dataset_size=55000)}
TARGET = 1.3


def main(argv=None):
    args, names, median_ratio, write = _bench.run(argv, __doc__.split("\n")[0], MODELS, "masked", "runs/bench_l0.json")
    if "l0_neuron" in names:
        r = median_ratio["wall"]["l0_neuron"]
        print(f"\nl0_neuron / masked = {r:.2f} wall (target <= {TARGET}: {'met' if r <= TARGET else 'not met'}), "
              f"{median_ratio['cpu']['l0_neuron']:.2f} CPU time")
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
