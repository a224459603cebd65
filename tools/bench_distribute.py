"""A CIFAR lottery recipe under a tf.distribute strategy: milliseconds per step and images per
second of the runner against the bare-Keras floor, measured side by side in one process; which
compile options work under the strategy; and a digest of the masks a deterministic level gives.

    python tools/bench_distribute.py --strategy=mirrored                      # every GPU (a GPU machine)
    python tools/bench_distribute.py --strategy=mirrored --logical_devices=2  # 2 replicas on one device
    python tools/bench_distribute.py --no-deterministic ...                   # probe XLA (see below)
    python tools/bench_distribute.py --model=conv2 --batch_size=8 --iterations=20 --rounds=1 \\
        --logical_devices=2 --probe_steps=10 --train_size=200                 # a smoke run on CPU

Images are random uint8 arrays of CIFAR-10's shape (a step's time does not depend on the pixels,
and the GPU machines have no network to fetch CIFAR-10); the training settings are those of
recipes/flags/cifar10_<model>.cfg (augmentation included), shortened to --iterations. With
--deterministic (the default, as the recipes run: tflth.determinism) TensorFlow's op determinism
is on unless XLA is deterministic as it is (CPUs alone, one replica), and Keras then compiles
without XLA whatever jit_compile asks (keras.src.trainers.trainer.model_supports_jit).

  probes  a bare `model.fit` of the plain architecture (keras.layers, family="plain") under the
          strategy, for each of jit_compile in (False, True) x steps_per_execution in (1, 10):
          its ms/step, or why it fails. Under several replicas the engine compiles one step per
          execution without XLA (tflth.distribute.xla_allowed); a probe that works and is
          faster there says that rule can be relaxed.
  floor   the plain architecture compiled by `tflth.engine.compile_model` with the runner's
          steps per execution, so with the compile options the runner gets, in Keras' own loop:
          training only, warmed up. Steady state: (time of a fit of 2 x --iterations - time of
          a fit of --iterations) / --iterations.
  runner  `tflth.lottery.runner.run` of level 0 (masked layers, the engine's loop, evaluation of
          5,000 validation images at step 0 and at the end and of 1,000 test images at the end,
          TensorBoard, masks and weights written). Steady state as for the floor, which cancels
          building, compiling, evaluating and writing; "runner_wall" is the whole run of
          2 x --iterations over its iterations.
  digest  one level of pruning after --digest_iterations: sha256 of the level-1 masks, to compare
          across machines (a GPU against a CPU); --masks_out keeps them (np.packbits).

Rounds alternate floor and runner so that noise hits both alike (and which of the two lengths
runs first); the report gives medians and the per-round ratio to the floor. The probes come
last, since one may fail badly (XLA), and the JSON at --out is rewritten after every phase and
probe, so a phase that fails (its error is recorded) loses none of the others.
"""
import argparse
import dataclasses
import hashlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # _bench, and tflth from this checkout without an install
import _bench  # noqa: E402

VALIDATION, TEST = 5000, 1000
PROBES = [(jit, spe) for jit in (False, True) for spe in (1, 10)]


def split_devices(n):
    """Each GPU (else the CPU) as `n` logical devices: several replicas on one device."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    for device in gpus or tf.config.list_physical_devices("CPU")[:1]:
        # A GPU's logical devices need a memory limit each; 8 GiB holds these CIFAR models.
        config = tf.config.LogicalDeviceConfiguration(memory_limit=8192 if gpus else None)
        tf.config.set_logical_device_configuration(device, [config] * n)
    return [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]


def recipe_hparams(args):
    """The flagfile's hyperparameters, evaluating only at the start and the end."""
    from absl import flags

    from tflth.lottery import cli
    values = flags.FlagValues()
    cli.define_run_flags(values)
    flagfile = os.path.join(HERE, "..", "recipes", "flags", f"cifar10_{args.model}.cfg")
    values(["bench", f"--flagfile={flagfile}", f"--batch_size={args.batch_size}", f"--iterations={args.iterations}",
            f"--eval_every={args.iterations}", "--lr_drops=", "--rewind_iteration=0"])
    return cli.read_hparams(values)


def with_iterations(hparams, iterations):
    return dataclasses.replace(hparams, training=dataclasses.replace(
        hparams.training, iterations=iterations, eval_every=iterations))


def cifar_shaped(train):
    import numpy as np

    from tflth import engine
    rng = np.random.default_rng(0)
    n = train + VALIDATION + TEST
    x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)
    return {"x": x[:train], "y": y[:train], "validation": engine.eval_stream(x[train:-TEST], y[train:-TEST]),
            "test": engine.eval_stream(x[-TEST:], y[-TEST:])}


def plain_model(hparams, jit=None, spe=None):
    """The architecture of keras.layers alone: compiled with the given XLA and steps per
    execution, or (None) as the engine compiles the runner's model."""
    import keras

    from tflth import engine, models
    keras.utils.set_random_seed(0)
    model = models.get_model(hparams.model.model, family="plain")
    if jit is None:
        training = hparams.training
        engine.compile_model(model, training, engine.steps_per_execution(training.eval_every, training.iterations))
    else:
        model.compile(engine.make_optimizer(hparams.training),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                      jit_compile=jit, steps_per_execution=spe)
    return model


def options(model):
    return f"jit_compile={bool(model.jit_compile)},steps_per_execution={model.steps_per_execution}"


def timed_fit(model, stream, steps):
    started = time.perf_counter()
    model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
    return 1000 * (time.perf_counter() - started) / steps


def error_line(e):
    """The line of an error that says what failed: a graph error's first root error ("(0)
    INVALID_ARGUMENT: ..."), else its last line that is not traceback, node or link."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip() and not line.strip().startswith(
        ("[[", "File ", "Cf. ", "Detected at node", "Graph execution error"))]
    roots = [line for line in lines if re.match(r"\(\d+\) [A-Z_]+:", line)]
    line = roots[0] if roots else lines[-1] if lines else ""
    return f"{type(e).__name__}: {line[:300]}"


def probe(hparams, stream, steps, deterministic, results, save):
    """Fills `results` {"jit_compile=..,steps_per_execution=..": {"ok", "ms_per_step" or "error"}},
    calling `save()` after each probe."""
    for jit, spe in PROBES:
        key = f"jit_compile={jit},steps_per_execution={spe}"
        try:
            model = plain_model(hparams, jit, spe)
            if jit and not model.jit_compile:
                raise RuntimeError("Keras compiles without XLA here (" + (
                    "op determinism is on: --no-deterministic to probe XLA" if deterministic
                    else "its model_supports_jit is False") + ")")
            model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)  # tracing (and XLA)
            results[key] = {"ok": True, "ms_per_step": timed_fit(model, stream, steps)}
        except Exception as e:  # noqa: BLE001: what fails under this strategy is the finding
            results[key] = {"ok": False, "error": error_line(e)}
        print(f"probe {key}: " + (f"{results[key]['ms_per_step']:.2f} ms/step" if results[key]["ok"]
                                  else f"fails: {results[key]['error']}"), flush=True)
        save()


def runner_seconds(hparams, data):
    from tflth.lottery import runner
    root = tempfile.mkdtemp(prefix="bench_distribute_")
    try:
        started = time.perf_counter()
        runner.run(hparams, levels=0, controls=(), root=root, data=data, verbose=False)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def digest(hparams, data, iterations, masks_out):
    """sha256 of the masks one level of pruning gives (level 0 writes them), and the fraction kept."""
    import numpy as np

    from tflth import io
    from tflth.lottery import paths, runner
    root = tempfile.mkdtemp(prefix="bench_distribute_")
    try:
        folder = runner.run(with_iterations(hparams, iterations), levels=0, controls=(), root=root, data=data,
                            verbose=False)
        masks = io.read_masks(paths.level_masks(paths.replicate_dir(folder, 0), 1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sha = hashlib.sha256()
    for name in sorted(masks):
        sha.update(name.encode() + np.asarray(masks[name], bool).tobytes())
    if masks_out:
        io.write_npz(masks_out, {k: np.packbits(np.asarray(v, bool)) for k, v in masks.items()})
    kept = sum(float(np.sum(m)) for m in masks.values()) / sum(m.size for m in masks.values())
    return {"sha256": sha.hexdigest(), "kept": kept, "iterations": iterations}


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", default="mirrored", help="default | mirrored | multi_worker | tpu")
    parser.add_argument("--logical_devices", type=int, default=1, help="split each GPU (else the CPU) in this many")
    parser.add_argument("--model", default="resnet20", help="a recipes/flags/cifar10_<model>.cfg")
    parser.add_argument("--batch_size", type=int, default=128, help="the global batch")
    parser.add_argument("--iterations", type=int, default=500, help="N: the runner trains N and 2N, the floor N")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probe_steps", type=int, default=200, help="steps per probe (a multiple of 10)")
    parser.add_argument("--digest_iterations", type=int, default=200, help="0: no mask digest")
    parser.add_argument("--masks_out", help="keep the digest's masks here (.npz of np.packbits)")
    parser.add_argument("--train_size", type=int, default=10000, help="random training images")
    parser.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                        help="bit-identical runs, as the recipes' --deterministic (tflth.determinism: op "
                             "determinism, and no XLA, unless on CPUs alone with one replica)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if (args.logical_devices < 1 or args.rounds < 1 or args.iterations < 1 or args.probe_steps < 10
            or args.probe_steps % 10 or args.digest_iterations < 0 or not os.path.exists(os.path.join(
                HERE, "..", "recipes", "flags", f"cifar10_{args.model}.cfg"))):
        parser.error("--model with a recipes/flags/cifar10_<model>.cfg; --logical_devices, --rounds, --iterations "
                     ">= 1; --probe_steps a positive multiple of 10; --digest_iterations >= 0")
    return args


def time_rounds(args, hparams, data, stream, result, ms, save):
    """Appends each round's ms per step to `ms`: the plain model's fit (the floor) and the runner's,
    each the difference between trainings of n and 2n iterations (start-up cancels out)."""
    n = args.iterations
    floor = plain_model(hparams)
    result["floor"] = options(floor)
    floor.fit(stream, steps_per_epoch=n, epochs=1, verbose=0)  # warm-up
    for round_ in range(args.rounds):
        lengths = (n, 2 * n) if round_ % 2 == 0 else (2 * n, n)
        fits = dict(zip(lengths, (timed_fit(floor, stream, i) * i for i in lengths)))
        runs = dict(zip(lengths, (1000 * runner_seconds(with_iterations(hparams, i), data) for i in lengths)))
        ms["floor"].append((fits[2 * n] - fits[n]) / n)
        ms["runner"].append((runs[2 * n] - runs[n]) / n)
        ms["runner_wall"].append(runs[2 * n] / (2 * n))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in ms.items()) + " ms/step", flush=True)
        save()


def print_table(median, ms, result):
    print("\n| variant | ms / step (median) | images / s | / floor (per round) |\n|---|---:|---:|---:|")
    for k, v in median.items():
        ratio = (f"{v / median['floor']:.2f} ({', '.join(f'{a / b:.2f}' for a, b in zip(ms[k], ms['floor']))})"
                 if "floor" in median and min(ms["floor"]) > 0 else "-")
        label = f"floor ({result['floor']})" if k == "floor" else k
        print(f"| {label} | {v:.2f} | {result['images_per_second'][k] or 0:.0f} | {ratio} |")


def main(argv=None):
    args = parse(argv)
    devices = split_devices(args.logical_devices) if args.logical_devices > 1 else None
    import tensorflow as tf

    from tflth import determinism, distribute, engine, internals, io
    strategy = distribute.get_strategy(args.strategy, devices) if devices else distribute.get_strategy(args.strategy)
    if args.deterministic:
        determinism.request(True, strategy)  # as the recipes' --deterministic with --jit_compile
    distribute.check_batch_size(args.batch_size, strategy)
    hparams, data = recipe_hparams(args), cifar_shaped(args.train_size)
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    print(f"strategy {args.strategy}: {strategy.num_replicas_in_sync} replicas; GPUs {gpus or 'none'}", flush=True)
    result = {**_bench.environment(), "args": vars(args), "replicas": strategy.num_replicas_in_sync, "gpus": gpus,
              "errors": {}}
    ms = {"floor": [], "runner": [], "runner_wall": []}

    def save():
        median = {k: statistics.median(v) for k, v in ms.items() if v}
        result.update(ms_per_step=ms, median_ms_per_step=median,
                      images_per_second={k: 1000 * args.batch_size / v if v > 0 else None
                                         for k, v in median.items()})
        if args.out:
            io.write_json(args.out, result)
        return median

    n = args.iterations
    spe = engine.steps_per_execution  # the runner's steps per execution for a training of n
    if strategy.num_replicas_in_sync == 1 and spe(n, n) != spe(2 * n, 2 * n):
        raise SystemExit(f"error: --iterations={n}: the runs of {n} and {2 * n} iterations would compile "
                         f"{spe(n, n)} and {spe(2 * n, 2 * n)} steps per execution; use a multiple of 100")
    save()
    with strategy.scope():
        stream = engine.train_stream(data["x"], data["y"], args.batch_size, seed=0, augment=hparams.dataset.augment)
        try:
            time_rounds(args, hparams, data, stream, result, ms, save)
        except Exception as e:  # noqa: BLE001: recorded; the digest and probes still run
            result["errors"]["timing"] = error_line(e)
            print(f"timing fails: {result['errors']['timing']}", flush=True)
        if args.digest_iterations:
            try:
                result["digest"] = digest(hparams, data, args.digest_iterations, args.masks_out)
                print(f"masks after {args.digest_iterations} iterations: {result['digest']}", flush=True)
            except Exception as e:  # noqa: BLE001
                result["errors"]["digest"] = error_line(e)
                print(f"digest fails: {result['errors']['digest']}", flush=True)
            save()
        result["probes"] = {}
        probe(hparams, stream, args.probe_steps, internals.op_determinism_on(), result["probes"], save)
    print_table(save(), ms, result)
    if args.out:
        print(f"wrote {args.out}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
