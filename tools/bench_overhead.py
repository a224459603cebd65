"""Time per epoch of masked layers vs plain Keras layers vs tfmot, side by side.

    PYTHONPATH=. python tools/bench_overhead.py
    PYTHONPATH=. python tools/bench_overhead.py --quick

Variants of one architecture (LeNet-300-100 and/or LeNet-5), all trained on the
same in-memory MNIST pipeline (shuffle, batch 60, prefetch) with Adam 1.2e-3 and
sparse categorical crossentropy from logits, `jit_compile=False`, no metrics:

  dense          the model built from keras.layers.Dense/Conv2D (family="plain")
  masked         tflth MaskedDense/MaskedConv2D + PruneCallback(Every(...)), so the
                 masks really change during the measured epochs
  tfmot          tfmot.sparsity.keras.prune_low_magnitude (PolynomialDecay, same
                 pruning frequency) + UpdatePruningStep, under tf_keras
  dense_spe100   / masked_spe100: the same with steps_per_execution=100
  ablations (not run by default): masked_nocb (masked layers, no callback),
  masked_noconstraint (no callback, the mask-reapplying kernel constraint removed: the cost
  of the mask weight alone),
  tfkeras_dense (plain tf_keras layers in the worker: separates what tfmot costs
  from what tf_keras's training loop costs compared with Keras 3's)

Importing tfmot switches the whole process to Keras 2, so tfmot runs in a
long-lived subprocess (this script with --_tfmot_worker, TF_USE_LEGACY_KERAS=1)
that answers one timed measurement per "epoch" line on stdin. That lets the
parent interleave all variants round-robin (A B C A B C ...), so machine noise
hits them alike. Each variant first runs one warm-up measurement (tracing),
excluded from the results. A measurement is one `fit` call of `--epochs` epochs
(a fraction with --quick), timed by wall clock and by the CPU time of the
process that trains (steadier on a shared machine); the tables report medians.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

# Nothing here imports keras, tensorflow or tflth at module level: the tfmot
# worker must import tensorflow only after TF_USE_LEGACY_KERAS=1 is set, and must
# never load Keras 3.

# tflth.data.PACKAGED_MNIST, without importing tflth here (see above).
PACKAGED_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tflth", "data", "mnist")
BATCH = 60
LR = 1.2e-3
NUM_TRAIN = 60_000
DEFAULT_VARIANTS = ("dense", "masked", "tfmot", "dense_spe100", "masked_spe100")
ABLATIONS = ("masked_nocb", "masked_noconstraint", "tfkeras_dense")
MODELS = ("lenet_300_100", "lenet5")
RATIOS = (("masked", "dense"), ("masked", "tfmot"), ("tfmot", "dense"),
          ("masked_spe100", "dense_spe100"), ("tfmot", "tfkeras_dense"))


def make_dataset(x, y, steps, seed=0):
    """The one input pipeline every variant (and the tfmot worker) uses."""
    import tensorflow as tf
    epochs_needed = math.ceil(steps * BATCH / len(x))
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat(epochs_needed)
    ds = ds.batch(BATCH).take(steps)
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- tfmot worker

def _tf_keras_model(name):
    """The tflth architectures, rebuilt with tf_keras layers (for tfmot)."""
    import tf_keras as k
    init = "glorot_normal"
    inputs = k.Input((28, 28, 1), name="input")
    x = inputs
    if name == "lenet5":
        x = k.layers.Conv2D(20, 5, kernel_initializer=init, name="conv1")(x)
        x = k.layers.MaxPooling2D(2, name="pool1")(x)
        x = k.layers.Conv2D(50, 5, kernel_initializer=init, name="conv2")(x)
        x = k.layers.MaxPooling2D(2, name="pool2")(x)
        hidden = (500,)
    else:
        hidden = (300, 100)
    x = k.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden, start=1):
        x = k.layers.Dense(units, activation="relu", kernel_initializer=init, name=f"fc{i}")(x)
    outputs = k.layers.Dense(10, kernel_initializer=init, name="output")(x)
    return k.Model(inputs, outputs, name=name)


def tfmot_worker(spec):
    """Answers each "epoch" line on stdin with one JSON line: the measurement's seconds."""
    # Protocol lines go to the real stdout; anything else printed (by TF, by
    # Keras) is sent to stderr so it cannot corrupt the protocol.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import numpy as np
    import tensorflow as tf
    import tf_keras as k
    import tensorflow_model_optimization as tfmot
    if tf.keras.__name__.split(".")[0] != "tf_keras":
        raise RuntimeError(f"tf.keras is {tf.keras.__name__}, expected tf_keras")

    data = np.load(spec["arrays"])
    ds = make_dataset(data["x"], data["y"], spec["steps"])
    base = _tf_keras_model(spec["model"])
    params = base.count_params()
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=spec["final_sparsity"], begin_step=0,
        end_step=spec["end_step"], frequency=spec["frequency"])
    model, callbacks = base, []
    if spec["prune"]:
        model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
        callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    model.compile(optimizer=k.optimizers.Adam(LR),
                  loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    versions = {"tf_keras": k.__version__, "tfmot": tfmot.__version__}
    proto.write(json.dumps({"ready": True, "params": params, "versions": versions}) + "\n")
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(ds, epochs=1, verbose=0, callbacks=callbacks)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        kernels = [w.numpy() for w in model.trainable_weights if "kernel" in w.name]
        sparsity = float(sum((w == 0).sum() for w in kernels) / sum(w.size for w in kernels))
        proto.write(json.dumps({"seconds": seconds, "cpu": cpu, "sparsity": sparsity}) + "\n")


class TfmotVariant:
    """The parent's handle on a tfmot worker subprocess."""

    def __init__(self, spec):
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--_tfmot_worker", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.ready = self._read()
        self.prune = spec["prune"]
        self.sparsity = None

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tfmot worker exited (code {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def measure(self):
        self.proc.stdin.write("epoch\n")
        self.proc.stdin.flush()
        answer = self._read()
        self.sparsity = answer["sparsity"] if self.prune else None
        return answer["seconds"], answer["cpu"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# --------------------------------------------------------------------------- Keras 3 variants

class KerasVariant:
    def __init__(self, name, model_name, ds, steps, prune_every):
        import keras
        from tflth import internals, models, pruning

        masked = name.startswith("masked")
        self.model = models.get_model(model_name, family="masked" if masked else "plain")
        spe = 100 if name.endswith("_spe100") else 1
        self.model.compile(optimizer=keras.optimizers.Adam(LR),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           steps_per_execution=spe, jit_compile=False)
        self.callbacks = []
        if name in ("masked", "masked_spe100"):
            self.callbacks = [pruning.PruneCallback(
                pruning.Every(every=prune_every, fraction=0.05), rates={"output": 0.025},
                verbose=0)]
        elif name == "masked_noconstraint":
            for layer in pruning.prunable_layers(self.model):
                internals.kernel_variable(layer).constraint = None
        self.ds = ds
        self.masked = masked
        self.sparsity = None

    def measure(self):
        start, cpu_start = time.perf_counter(), time.process_time()
        self.model.fit(self.ds, epochs=1, verbose=0, callbacks=self.callbacks)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if self.masked:
            from tflth.pruning import sparsity
            self.sparsity = sparsity(self.model)["total"]
        return seconds, cpu

    def close(self):
        pass


# --------------------------------------------------------------------------- driver

def machine_info():
    import keras
    import tensorflow as tf
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "gpus": len(tf.config.list_physical_devices("GPU")),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__}


def bench_model(model_name, variants, x, y, args, tmpdir, info):
    from tflth import models
    steps = max(1, round(args.epochs * NUM_TRAIN / BATCH))
    ds = make_dataset(x, y, steps)
    measurements = 1 + args.repeats
    handles = {}
    try:
        for name in variants:
            if name in ("tfmot", "tfkeras_dense"):
                path = os.path.join(tmpdir, "mnist.npz")
                if not os.path.exists(path):
                    import numpy as np
                    np.savez(path, x=x, y=y)
                handles[name] = TfmotVariant({
                    "model": model_name, "arrays": path, "steps": steps,
                    "prune": name == "tfmot",
                    "end_step": steps * measurements, "frequency": args.prune_every,
                    "final_sparsity": args.tfmot_final_sparsity})
                plain = models.get_model(model_name, family="plain").count_params()
                if handles[name].ready["params"] != plain:
                    raise RuntimeError(f"tfmot {model_name} has {handles[name].ready['params']} "
                                       f"parameters, tflth's {plain}: not the same architecture")
                info.update(handles[name].ready["versions"])
            else:
                handles[name] = KerasVariant(name, model_name, ds, steps, args.prune_every)
        times = {name: [] for name in variants}
        cpu_times = {name: [] for name in variants}
        for round_ in range(measurements):
            for name in variants:  # round-robin: A B C A B C ...
                seconds, cpu = handles[name].measure()
                label = "warm-up" if round_ == 0 else f"repeat {round_}/{args.repeats}"
                print(f"[{model_name}] {label:12s} {name:20s} {seconds:8.2f} s  cpu {cpu:8.2f} s"
                      + ("" if handles[name].sparsity is None
                         else f"  (sparsity {handles[name].sparsity:.3f})"), flush=True)
                if round_ > 0:
                    times[name].append(seconds / args.epochs)
                    cpu_times[name].append(cpu / args.epochs)
        sparsity = {n: h.sparsity for n, h in handles.items() if h.sparsity is not None}
    finally:
        for handle in handles.values():
            handle.close()
    medians, ratios = _summarize(times)
    cpu_medians, cpu_ratios = _summarize(cpu_times)
    return {"steps_per_measurement": steps, "seconds_per_epoch": times, "median": medians,
            "ratios": ratios, "cpu_seconds_per_epoch": cpu_times, "cpu_median": cpu_medians,
            "cpu_ratios": cpu_ratios, "final_sparsity": sparsity}


def _summarize(times):
    """Medians, and each ratio both as a ratio of medians and over the paired rounds."""
    medians = {n: statistics.median(t) for n, t in times.items()}
    ratios = {}
    for a, b in RATIOS:
        if a in medians and b in medians:
            paired = [ta / tb for ta, tb in zip(times[a], times[b])]
            ratios[f"{a}/{b}"] = {"of_medians": medians[a] / medians[b],
                                  "paired_median": statistics.median(paired),
                                  "paired_min": min(paired), "paired_max": max(paired)}
    return medians, ratios


def markdown_table(results, clock="wall"):
    """One row per model and steps_per_execution. Ratio cells: ratio of the medians,
    then in brackets the median and range of the per-round paired ratios."""
    prefix = "" if clock == "wall" else "cpu_"

    def cell(med, key):
        return f"{med[key]:.2f}" if key in med else "—"

    def ratio(res, key):
        r = res[prefix + "ratios"].get(key)
        return "—" if r is None else (f"{r['of_medians']:.3f} [{r['paired_median']:.2f}; "
                                      f"{r['paired_min']:.2f}–{r['paired_max']:.2f}]")

    unit = "s/epoch" if clock == "wall" else "CPU s/epoch"
    lines = [f"| model | steps/exec | dense {unit} | masked {unit} | tfmot {unit} | "
             "masked/dense | masked/tfmot | tfmot/dense |",
             "|---|---|---|---|---|---|---|---|"]
    for model, res in results.items():
        med = res[prefix + "median"]
        lines.append(f"| {model} | 1 | {cell(med, 'dense')} | {cell(med, 'masked')} | "
                     f"{cell(med, 'tfmot')} | {ratio(res, 'masked/dense')} | "
                     f"{ratio(res, 'masked/tfmot')} | {ratio(res, 'tfmot/dense')} |")
        if "dense_spe100" in med or "masked_spe100" in med:
            lines.append(f"| {model} | 100 | {cell(med, 'dense_spe100')} | "
                         f"{cell(med, 'masked_spe100')} | — | "
                         f"{ratio(res, 'masked_spe100/dense_spe100')} | — | — |")
    extra = [(m, n) for m, res in results.items() for n in res["median"] if n in ABLATIONS]
    if extra:
        lines += ["", f"| model | ablation | {unit} | / dense |", "|---|---|---|---|"]
        for m, n in extra:
            med, per_round = results[m][prefix + "median"], results[m][prefix + "seconds_per_epoch"]
            rel = "—"
            if "dense" in per_round:
                paired = [a / b for a, b in zip(per_round[n], per_round["dense"])]
                rel = (f"{med[n] / med['dense']:.3f} [{statistics.median(paired):.2f}; "
                       f"{min(paired):.2f}–{max(paired):.2f}]")
            lines.append(f"| {m} | {n} | {med[n]:.2f} | {rel} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", default=os.environ.get("TFLTH_DATA_DIR") or PACKAGED_MNIST,
                   help="folder with the MNIST IDX files (default: $TFLTH_DATA_DIR, else the "
                        "MNIST packaged with tflth)")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, from {','.join(MODELS)}")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated, from {','.join(DEFAULT_VARIANTS + ABLATIONS)}")
    p.add_argument("--epochs", type=float, default=1.0,
                   help="length of one timed measurement, in epochs of 60,000 images")
    p.add_argument("--repeats", type=int, default=3, help="timed measurements per variant")
    p.add_argument("--prune_every", type=int, default=200,
                   help="pruning frequency (steps) of both the masked and the tfmot variant")
    p.add_argument("--tfmot_final_sparsity", type=float, default=0.6,
                   help="PolynomialDecay target, reached at the last measured step")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --epochs 0.05 --repeats 1 --prune_every 10")
    p.add_argument("--out", help="also write the results as JSON to this file")
    p.add_argument("--_tfmot_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._tfmot_worker:
        return args
    if args.quick:
        args.epochs, args.repeats, args.prune_every = 0.05, 1, 10
    if not os.path.isdir(args.data_dir):
        p.error(f"--data_dir {args.data_dir!r} is not a directory")
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    for m in args.models:
        if m not in MODELS:
            p.error(f"--models: {m!r} is not one of {MODELS}")
    for v in args.variants:
        if v not in DEFAULT_VARIANTS + ABLATIONS:
            p.error(f"--variants: {v!r} is not one of {DEFAULT_VARIANTS + ABLATIONS}")
    if args.repeats < 1 or args.epochs <= 0 or args.prune_every < 1:
        p.error("--repeats and --prune_every must be >= 1 and --epochs > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args._tfmot_worker:
        return tfmot_worker(json.loads(args._tfmot_worker))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # fit()'s default shuffle=True does not apply to a tf.data.Dataset (ours shuffles).
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    from tflth import data, io

    x, y = data.arrays("mnist", "train", data_dir=args.data_dir, validation_size=0)
    if len(x) != NUM_TRAIN:
        raise SystemExit(f"expected {NUM_TRAIN} MNIST training images, found {len(x)}")
    info = machine_info()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_overhead.") as tmpdir:
        for model_name in args.models:
            results[model_name] = bench_model(model_name, args.variants, x, y, args, tmpdir, info)
    table = markdown_table(results, "wall")
    cpu_table = markdown_table(results, "cpu")
    print("\nMedian wall-clock seconds per epoch. Ratios: ratio of the medians "
          "[median of the per-round paired ratios; their range]\n")
    print(table)
    print("\nThe same in CPU seconds of the training process (less sensitive to other "
          "load on a shared machine)\n")
    print(cpu_table)
    print("\n" + ", ".join(f"{k}: {v}" for k, v in info.items()))
    if args.out:
        config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        io.write_json(args.out, {
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "config": dict(config, batch=BATCH, lr=LR, jit_compile=False,
                           loss="sparse_categorical_crossentropy(from_logits=True)"),
            "machine": info, "results": results, "table": table,
            "cpu_table": cpu_table})


if __name__ == "__main__":
    sys.exit(main())
