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
import argparse
import os
import platform
import statistics
import sys
import time

MODELS = {"masked": dict(family="masked"),
          "l0_neuron": dict(family="l0", gates="neuron", l0_lambda=0.1, dataset_size=55000),
          "l0_weight": dict(family="l0", gates="weight", l0_lambda=0.1, dataset_size=55000)}
TARGET = 1.3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per timed fit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--steps_per_execution", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="TF intra- and inter-op threads (0: TF's default)")
    parser.add_argument("--no_jit", action="store_true", help="compile without XLA")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default="runs/bench_l0.json", help="the results as JSON")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    spe = args.steps_per_execution
    if set(names) - set(MODELS) or "masked" not in names or args.rounds < 1 or spe < 1 or args.steps % spe:
        parser.error(f"--models from {list(MODELS)} with masked; --rounds >= 1; "
                     "--steps a multiple of --steps_per_execution")
    import numpy as np
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    import tflth
    from tflth import io
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (55000, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 55000, dtype=np.int64)
    stream = tflth.engine.train_stream(x, y, args.batch_size, seed=0)
    hparams = tflth.engine.TrainingHparams(lr=1e-3, jit_compile=not args.no_jit)
    models = {}
    for name in names:
        keras.utils.set_random_seed(0)
        models[name] = tflth.models.lenet_300_100(**MODELS[name])
        tflth.engine.compile_model(models[name], hparams, steps_per_execution=spe)
        models[name].fit(stream, steps_per_epoch=max(spe, 200 // spe * spe), epochs=1, verbose=0)  # warm-up

    ms = {clock: {name: [] for name in names} for clock in ("wall", "cpu")}
    for round_ in range(args.rounds):
        for name in names:
            wall, cpu = time.perf_counter(), time.process_time()
            models[name].fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0)
            ms["wall"][name].append(1000 * (time.perf_counter() - wall) / args.steps)
            ms["cpu"][name].append(1000 * (time.process_time() - cpu) / args.steps)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {ms['wall'][n][-1]:.3f}" for n in names) + " ms/step "
              "(wall)", flush=True)
    median = {c: {n: statistics.median(t) for n, t in ms[c].items()} for c in ms}
    ratio = {c: {n: [a / b for a, b in zip(ms[c][n], ms[c]["masked"])] for n in names} for c in ms}
    median_ratio = {c: {n: statistics.median(r) for n, r in ratio[c].items()} for c in ms}

    print("\n| model | wall ms / step | / masked: median (per round) | CPU ms / step | / masked: median (per round) |"
          "\n|---|---:|---:|---:|---:|")
    for n in names:
        print(f"| {n} | " + " | ".join(f"{median[c][n]:.3f} | {median_ratio[c][n]:.2f} "
                                       f"({', '.join(f'{r:.2f}' for r in ratio[c][n])})" for c in ms) + " |")
    if "l0_neuron" in names:
        r = median_ratio["wall"]["l0_neuron"]
        print(f"\nl0_neuron / masked = {r:.2f} wall (target <= {TARGET}: {'met' if r <= TARGET else 'not met'}), "
              f"{median_ratio['cpu']['l0_neuron']:.2f} CPU time")
    result = {"machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
              "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                           "keras": keras.__version__},
              "args": vars(args), "ms_per_step": ms, "median_ms_per_step": median,
              "ratio_to_masked": ratio, "median_ratio_to_masked": median_ratio}
    io.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
