"""Milliseconds per iteration of the lottery runner at the paper's MNIST settings, against the
bare-Keras floor, measured side by side in one process.

    python tools/bench_lottery.py                       # 5,000 iterations per training, 2 rounds
    python tools/bench_lottery.py --iterations 500 --rounds 1 --variants floor,runner   # a smoke run

Variants, all LeNet-300-100 on the real MNIST files packaged with tflth, batch 60, Adam 1.2e-3:

  floor      a bare `model.fit` of the plain network (keras.layers.Dense), jit_compile=True,
             steps_per_execution=100, one in-memory tf.data pipeline (tflth.data.load), training
             only: what Keras itself does on this machine. Timed after a warm-up fit.
  runner     `tflth.lottery.runner.run` with recipes/flags/mnist_lth.cfg's settings (masked
             layers, validation every 100 iterations, test at each new best validation loss and
             at the end, checkpoints every minute, TensorBoard, pruning, rewinding), one level
             with both controls: 4 trainings of --iterations. The whole run's wall time
             (compiling, evaluating, checkpointing, pruning included; reading the data not)
             divided by the iterations it trained.
  runner_w2  the same with --workers 2 (branches in 2 processes; process start-up included).

Rounds alternate the variants (floor, runner, runner_w2, floor, ...) so that machine noise hits
them alike. The report gives medians and the ratio runner / floor, and projects the full paper
recipe: 15 levels with the ticket and both controls at each = 46 trainings of 50,000 iterations.
"""
import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

PAPER_TRAININGS, PAPER_ITERATIONS = 46, 50_000


def floor(iterations):
    import keras

    import tflth
    keras.utils.set_random_seed(0)
    model = tflth.models.lenet_300_100(family="plain")
    model.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True, steps_per_execution=100)
    train = tflth.data.load("mnist", "train", batch_size=60, repeat=True)
    model.fit(train, steps_per_epoch=500, epochs=1, verbose=0)  # warm-up: tracing and XLA
    started = time.perf_counter()
    model.fit(train, steps_per_epoch=iterations, epochs=1, verbose=0)
    return time.perf_counter() - started, iterations


def runner(iterations, workers):
    from tflth.lottery import cli, runner as lottery_runner
    from absl import flags
    values = flags.FlagValues()
    cli.define_run_flags(values)
    values(["bench", "--flagfile=" + os.path.join(os.path.dirname(__file__), "..", "recipes", "flags", "mnist_lth.cfg"),
            f"--iterations={iterations}"])
    hparams = cli.read_hparams(values)
    data = lottery_runner.load_data(hparams) if workers == 1 else None  # workers load their own
    root = tempfile.mkdtemp(prefix="bench_lottery_")
    try:
        started = time.perf_counter()
        lottery_runner.run(hparams, levels=1, seeds=(0,), controls=("reinit", "random_prune"), root=root,
                           data=data, verbose=False, workers=workers)
        return time.perf_counter() - started, 4 * iterations
    finally:
        shutil.rmtree(root, ignore_errors=True)


VARIANTS = {"floor": floor, "runner": lambda n: runner(n, 1), "runner_w2": lambda n: runner(n, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=5000, help="iterations per training")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="floor,runner,runner_w2")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or args.iterations < 100 or args.iterations % 100 or args.rounds < 1:
        parser.error(f"--variants from {sorted(VARIANTS)}; --iterations a multiple of 100; --rounds >= 1")
    import tensorflow as tf
    import keras
    ms = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            seconds, iterations = VARIANTS[variant](args.iterations)
            ms[variant].append(1000 * seconds / iterations)
            print(f"round {round_ + 1} {variant}: {ms[variant][-1]:.3f} ms/iteration", flush=True)
    median = {v: statistics.median(t) for v, t in ms.items()}
    paired = {v: [a / b for a, b in zip(ms[v], ms["floor"])] for v in variants if "floor" in ms}
    result = {"machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
              "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__},
              "iterations": args.iterations, "rounds": args.rounds, "ms_per_iteration": ms, "median": median,
              "paired_ratio_to_floor": paired}
    print("\n| variant | ms / iteration (median) | / floor (per round) | paper recipe, one seed |\n"
          "|---|---:|---:|---:|")
    for v in variants:
        ratio = (f"{median[v] / median['floor']:.2f} ({', '.join(f'{r:.2f}' for r in paired[v])})"
                 if "floor" in median else "—")
        minutes = median[v] * PAPER_TRAININGS * PAPER_ITERATIONS / 60_000
        print(f"| {v} | {median[v]:.3f} | {ratio} | {minutes:.0f} min |")
    if args.out:
        from tflth import io
        io.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
