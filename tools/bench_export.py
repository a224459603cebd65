"""Size and CPU latency of the exports (tflth.export), side by side in one run.

    python tools/bench_export.py                              # LeNet-300-100 and LeNet-5, 90/95/98/99%
    python tools/bench_export.py --models lenet_300_100 --keep 2 --iterations 200 --calls 5   # a smoke run

For each model and % of weights kept, a network is trained with gradual magnitude pruning
through the sparse-training runner (the ablation study's "gradual" method, real MNIST,
--iterations iterations; its run folder under --root is reused when it exists), then exported
in every format (and once more, the sparsest network with half of each hidden layer's units
removed on top by `tflth.pruning.prune_units`, not retrained: a network that compaction shrinks,
for timing only), in every format: SavedModels `dense` (zeros kept), `sparse` (CSR kernels, sparse matmul) and
`compact` (pruned units removed), and TFLite with its sparsity optimisation. Reported per export:
bytes on disk (raw, and gzipped as a .tar.gz), the variables' bytes against the CSR limit
(32-bit values, column indices and row pointers; biases and the variables' index file count
against the export), the sparse format's CSR arrays against the limit with the index width it
stores (16-bit columns), and the median milliseconds per call at
batch 1 and 256 of the loaded export (SavedModel `serve`, TFLite `Interpreter.invoke`). The
exports take turns call by call group (--calls calls each, --rounds rounds), so machine noise
hits them alike; latency ratios are to the dense SavedModel of the same network. No GPU is used;
TensorFlow and TFLite each get one thread per core.
Targets at 2% kept (98% sparsity): sparse variables <= 1.25x the CSR limit and >= 15x smaller
than the dense ones; compact faster than dense wherever it removed >= 50% of the hidden units.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import _bench

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FORMATS = ("dense", "sparse", "compact", "tflite")
BATCHES = (1, 256)


def trained(model_name, keep, iterations, root):
    """A gradual-magnitude-pruned network at `keep` % of the weights, trained (or found) in `root`."""
    from tflth.ablation import methods
    from tflth.engine.hparams import DatasetHparams, TrainingHparams
    from tflth.export import from_run
    from tflth.trainer import runner
    from tflth.trainer.hparams import ModelHparams, TrainerHparams

    hparams = TrainerHparams(DatasetHparams(), ModelHparams(model_name),
                             TrainingHparams(iterations=iterations, eval_every=max(1, iterations // 5)),
                             methods.sparsity_hparams("gradual", keep, iterations))
    folder = runner.run(hparams, root=root, verbose=False)
    return from_run.load(folder)[0]


def hidden_units_removed(model, compact):
    """The share of hidden units (every Dense/Conv2D layer but the last) that compaction removed."""
    from tflth.export.saving import units
    before, after = ([int(n) for n in units(m).split("-")[:-1]] for m in (model, compact))
    return 1.0 - sum(after) / sum(before)


def exports(model, folder, sample):
    """{format: (report, predict function)} for every format, written under `folder` and checked
    on `sample`."""
    import warnings

    from tflth import export
    from tflth.export import saving
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in FORMATS[:3]:
            path = os.path.join(folder, fmt)
            out[fmt] = (export.save_sparse(model, path, format=fmt, sample=sample), saving.saved_model_predictor(path))
        path = os.path.join(folder, "model.tflite")
        # as many threads as TensorFlow's own pools use (its default: one per core)
        out["tflite"] = (export.to_tflite(model, path, sample=sample), saving.tflite_predictor(path, os.cpu_count()))
    return out


def time_interleaved(predictors, x, calls, rounds):
    """{name: median ms per call}; the predictors take turns, `calls` calls each, `rounds` times."""
    for predict in predictors.values():
        predict(x)  # warm-up: tracing, allocation
    ms = {name: [] for name in predictors}
    for _ in range(rounds):
        for name, predict in predictors.items():
            started = time.perf_counter()
            for _ in range(calls):
                predict(x)
            ms[name].append(1000.0 * (time.perf_counter() - started) / calls)
    return {name: statistics.median(values) for name, values in ms.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lenet_300_100,lenet5")
    parser.add_argument("--keep", default="10,5,2,1", help="%% of weights kept, comma-separated")
    parser.add_argument("--iterations", type=int, default=20000, help="training iterations per network")
    parser.add_argument("--calls", type=int, default=50, help="calls per timed group")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--root", default="runs", help="folder of the training runs")
    parser.add_argument("--out", default="runs/bench_export.json")
    args = parser.parse_args(argv)

    import numpy as np

    from tflth import data, io, pruning
    from tflth.export import saving

    x_test = data.arrays("mnist", "test")[0][:max(BATCHES)].astype(np.float32) / 255.0
    rows = []
    for model_name in args.models.split(","):
        for keep in [float(k) for k in args.keep.split(",")] + ["units"]:
            if keep == "units":  # the sparsest network with half its hidden units pruned on top (not retrained)
                model = trained(model_name, min(float(k) for k in args.keep.split(",")), args.iterations, args.root)
                pruning.prune_units(model, 0.5)
            else:
                model = trained(model_name, keep, args.iterations, args.root)
            with tempfile.TemporaryDirectory() as folder:
                made = exports(model, folder, x_test)
                removed = hidden_units_removed(model, saving.export_model(model, "compact"))
                latency = {b: time_interleaved({f: p for f, (_, p) in made.items()}, x_test[:b], args.calls,
                                               args.rounds) for b in BATCHES}
            for fmt, (report, _) in made.items():
                kept = 100.0 * report["weights_kept"] / report["weights"]
                rows.append({"model": model_name, "keep": keep, "kept": kept, "format": fmt,
                             "hidden_units_removed": removed,
                             **{k: report.get(k) for k in ("bytes", "gzip_bytes", "variable_bytes", "csr_limit_bytes",
                                                           "csr_bytes", "csr_limit_stored_index_bytes", "weights_kept",
                                                           "weights", "max_abs_difference")},
                             **{f"ms_batch_{b}": latency[b][fmt] for b in BATCHES},
                             **{f"vs_dense_batch_{b}": latency[b][fmt] / latency[b]["dense"] for b in BATCHES}})
                print(_line(rows[-1]), flush=True)
    print()
    _targets(rows)
    io.write_json(args.out, {"rows": rows, "args": vars(args), **_bench.environment(),
                             "threads": {"tensorflow": "default (one per core)", "tflite": os.cpu_count()}})
    print(f"[bench] written to {args.out}")
    return 0


def _line(r):
    variables = f"{r['variable_bytes'] / 1000:9.1f}" if r["variable_bytes"] else " " * 9
    return (f"{r['model']:14s} {r['kept']:5.2f}% {r['format']:8s} {r['bytes'] / 1000:9.1f} kB, gzip "
            f"{r['gzip_bytes'] / 1000:8.1f} kB, variables {variables} kB (CSR limit {r['csr_limit_bytes'] / 1000:.1f}) "
            f"| batch 1 {r['ms_batch_1']:.3f} ms ({r['vs_dense_batch_1']:.2f}x) | batch 256 "
            f"{r['ms_batch_256']:.3f} ms ({r['vs_dense_batch_256']:.2f}x) | hidden units removed "
            f"{100 * r['hidden_units_removed']:.0f}%")


def _targets(rows):
    by = {(r["model"], r["keep"], r["format"]): r for r in rows}
    for (model, keep, fmt), r in by.items():
        if fmt == "sparse" and keep == 2:
            dense = by[(model, keep, "dense")]
            limit, smaller = r["variable_bytes"] / r["csr_limit_bytes"], dense["variable_bytes"] / r["variable_bytes"]
            stored = r["csr_bytes"] / r["csr_limit_stored_index_bytes"]
            print(f"{model} at 98%: sparse variables {limit:.2f}x the CSR limit with 32-bit indices (target <= 1.25: "
                  f"{'met' if limit <= 1.25 else 'not met'}; its CSR arrays alone are {stored:.2f}x the limit with "
                  f"the 16-bit column indices it stores), {smaller:.1f}x smaller than dense (target >= 15: "
                  f"{'met' if smaller >= 15 else 'not met'})")
        if fmt == "compact" and r["hidden_units_removed"] >= 0.5:
            faster = all(r[f"vs_dense_batch_{b}"] < 1 for b in BATCHES)
            print(f"{model} at {r['kept']:.2f}% kept: compact removed {100 * r['hidden_units_removed']:.0f}% of the hidden "
                  f"units, {r['vs_dense_batch_1']:.2f}x / {r['vs_dense_batch_256']:.2f}x dense's time at batch 1 / 256 "
                  f"(target < 1: {'met' if faster else 'not met'})")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU latency: the SavedModels must not run on a GPU
    sys.exit(main())
