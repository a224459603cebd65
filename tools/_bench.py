"""What the side-by-side training-step benchmarks (tools/bench_l0.py, tools/bench_bayes.py) share.

Every model trains on the same in-memory stream of random uint8 MNIST-shaped images, compiled
by `tflth.engine.compile_model`; after one warm-up fit each, the models take turns, one timed
`model.fit` of `steps` steps each, for `rounds` rounds, so that machine noise hits them alike.
Each fit is timed by wall clock and by the process's CPU time. Imported by the scripts as
`_bench` (run as `python tools/<script>.py`, tools/ is on the path).
"""
import argparse
import os
import platform
import statistics
import time

CLOCKS = ("wall", "cpu")


def add_arguments(parser, steps=2000, rounds=5):
    """The arguments every step benchmark takes (`--models` and `--out` are each script's own)."""
    parser.add_argument("--steps", type=int, default=steps, help="training steps per timed fit")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--steps_per_execution", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="TF intra- and inter-op threads (0: TF's default)")
    parser.add_argument("--no_jit", action="store_true", help="compile without XLA")


def check_arguments(parser, args, names, known, reference):
    spe = args.steps_per_execution
    if set(names) - set(known) or reference not in names or args.rounds < 1 or spe < 1 or args.steps % spe:
        parser.error(f"--models from {list(known)} with {reference}; --rounds >= 1; "
                     "--steps a multiple of --steps_per_execution")


def setup_threads(args):
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)


def build_models(names, make, args):
    """{name: model}: `make(name)` built under seed 0, compiled like the engine compiles (Adam 1e-3,
    XLA unless --no_jit, --steps_per_execution), warmed up by one fit; and the stream they train on."""
    import keras
    import numpy as np

    import tflth
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (55000, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 55000, dtype=np.int64)
    stream = tflth.engine.train_stream(x, y, args.batch_size, seed=0)
    hparams = tflth.engine.TrainingHparams(lr=1e-3, jit_compile=not args.no_jit)
    spe = args.steps_per_execution
    models = {}
    for name in names:
        keras.utils.set_random_seed(0)
        models[name] = make(name)
        tflth.engine.compile_model(models[name], hparams, steps_per_execution=spe)
        models[name].fit(stream, steps_per_epoch=max(spe, 200 // spe * spe), epochs=1, verbose=0)  # warm-up
    return models, stream


def time_interleaved(models, stream, steps, rounds):
    """{clock: {name: [ms per step of each round]}}, the models taking turns in each round."""
    ms = {clock: {name: [] for name in models} for clock in CLOCKS}
    for round_ in range(rounds):
        for name, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
            ms["wall"][name].append(1000 * (time.perf_counter() - wall) / steps)
            ms["cpu"][name].append(1000 * (time.process_time() - cpu) / steps)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {ms['wall'][n][-1]:.3f}" for n in models) + " ms/step "
              "(wall)", flush=True)
    return ms


def summarize(ms, reference):
    """Median ms per step, the ratio to `reference` in each round, and its median, per clock."""
    median = {c: {n: statistics.median(t) for n, t in ms[c].items()} for c in ms}
    ratio = {c: {n: [a / b for a, b in zip(ms[c][n], ms[c][reference])] for n in ms[c]} for c in ms}
    median_ratio = {c: {n: statistics.median(r) for n, r in ratio[c].items()} for c in ms}
    return median, ratio, median_ratio


def print_table(names, median, ratio, median_ratio, reference):
    print(f"\n| model | wall ms / step | / {reference}: median (per round) | CPU ms / step "
          f"| / {reference}: median (per round) |\n|---|---:|---:|---:|---:|")
    for n in names:
        print(f"| {n} | " + " | ".join(f"{median[c][n]:.3f} | {median_ratio[c][n]:.2f} "
                                       f"({', '.join(f'{r:.2f}' for r in ratio[c][n])})" for c in median) + " |")


def environment():
    """{"machine", "versions"}: what every benchmark's JSON says it ran on."""
    import keras
    import tensorflow as tf
    return {"machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
            "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                         "keras": keras.__version__}}


def result(args, ms, median, ratio, median_ratio, reference):
    """The JSON a benchmark writes: machine, versions, arguments and every measurement."""
    return {**environment(), "args": vars(args), "ms_per_step": ms, "median_ms_per_step": median,
            f"ratio_to_{reference}": ratio, f"median_ratio_to_{reference}": median_ratio}


def run(argv, description, models, reference, out, **defaults):
    """The whole of a LeNet-300-100 step benchmark: parse the command line (--models picks from
    `models`, {name: tflth.models.lenet_300_100 keyword arguments, or a function returning a
    model}), build, time interleaved, print the table. Returns (args, names, median_ratio, write),
    `write()` saving the JSON to --out."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser, **defaults)
    parser.add_argument("--models", default=",".join(models))
    parser.add_argument("--out", default=out, help="the results as JSON")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    check_arguments(parser, args, names, models, reference)
    setup_threads(args)
    import tflth
    from tflth import io
    make = lambda name: models[name]() if callable(models[name]) else tflth.models.lenet_300_100(**models[name])
    built, stream = build_models(names, make, args)
    ms = time_interleaved(built, stream, args.steps, args.rounds)
    median, ratio, median_ratio = summarize(ms, reference)
    print_table(names, median, ratio, median_ratio, reference)

    def write():
        io.write_json(args.out, result(args, ms, median, ratio, median_ratio, reference))
        print(f"wrote {args.out}")
    return args, names, median_ratio, write
