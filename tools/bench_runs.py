"""Wall time of whole recipe commands, side by side: what a run costs beyond its training steps.

    python tools/bench_runs.py deterministic                  # --deterministic against =false
    python tools/bench_runs.py cells --iterations=10000       # one ablation cell per family
    python tools/bench_runs.py cells --iterations=200 --eval_every=100 --rounds=1   # a smoke run

Every variant runs as its own process on a fresh --root (start-up, data loading, tracing and
XLA compilation included, as a user pays them); the variants take turns, one run each per
round, for --rounds rounds, so that machine noise hits them alike. Each run's wall time is
measured around the process; its metrics.json files give the training's `time_split`
(`tflth.engine.train`: steps, evaluation, checkpoints, points; the runners add final and
predictive) and the digests of its final weights.

deterministic: the lottery recipe the issue measured (recipes/mnist_lth.py
  --flagfile=recipes/flags/mnist_lth.cfg --levels=1 --seeds=0, --iterations per training) as
  it is (`default`), with --deterministic=false (`nondeterministic`), and with
  --jit_compile=false (`no_xla`: what --deterministic cost before tflth.determinism, op
  determinism without XLA). Target: default / nondeterministic <= 1.05, and the final weights
  of every round the same bits (per variant). On CPUs alone `default` and `nondeterministic` are
  the same configuration (both XLA, no op determinism), so their ratio measures the machine's
  noise and their weights agree by construction; `no_xla` / default is what keeping XLA saves.
cells: recipes/ablation.py --flagfile=recipes/flags/mnist_ablation.cfg --keep=2 --seeds=0 for
  one method per family: gradual (masked), l0, svd (sparse variational dropout), horseshoe,
  snr (Flipout, N(0, 1)). Per cell: the ms per training step (time_split's steps / iterations:
  tracing, XLA compilation and the callbacks between steps included, so use thousands of
  iterations) and its ratio to the masked cell's; target: a cell's wall time <= 1.3 x (that step
  ratio) x the masked cell's wall time. The ablation's Bayesian cells sample no predictive
  (mc_samples=0): their `predictive` part is the mean mode's calibration alone.

Both walls include the process's start-up (importing TensorFlow: 10 to 20 s), which pulls wall
ratios toward 1; `outside` is a run's wall time less its parts (start-up, data, model, the
ablation's table). The JSON records the load average before and after every run.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _bench

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOTTERY = ["recipes/mnist_lth.py", "--flagfile=recipes/flags/mnist_lth.cfg", "--levels=1", "--seeds=0"]
PRESETS = {
    "deterministic": {"default": LOTTERY, "nondeterministic": [*LOTTERY, "--deterministic=false"],
                      "no_xla": [*LOTTERY, "--jit_compile=false"]},
    "cells": {family: ["recipes/ablation.py", "--flagfile=recipes/flags/mnist_ablation.cfg", f"--methods={method}",
                       "--keep=2", "--seeds=0"]
              for family, method in [("masked", "gradual"), ("l0", "l0"), ("svd", "svd"), ("horseshoe", "horseshoe"),
                                     ("snr", "snr")]},
}
DEFAULT_ITERATIONS = {"deterministic": 10000, "cells": 10000}


def run_once(argv, root, iterations, eval_every):
    """(wall seconds, [metrics of every training the command wrote]) of one run on a fresh `root`."""
    command = [sys.executable, *argv, f"--iterations={iterations}", f"--root={root}", "--quiet"]
    if eval_every:
        command.append(f"--eval_every={eval_every}")
    if "recipes/ablation.py" in argv:
        command.append(f"--out={os.path.join(root, 'table')}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_DETERMINISTIC_OPS", None)  # it would turn op determinism on in every variant
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    metrics = []
    for path in sorted(glob.glob(os.path.join(root, "**", "metrics.json"), recursive=True)):
        with open(path) as f:
            metrics.append(json.load(f))
    return wall, [m for m in metrics if "rows" in m]


def summary(wall, metrics, iterations):
    """What one run is reported by: wall seconds, the time split summed over its trainings, the
    ms per training step, how it compiled and the digests of its final weights."""
    split = {}
    for m in metrics:
        for part, seconds in (m.get("time_split") or {}).items():
            split[part] = split.get(part, 0.0) + seconds
    steps = sum(iterations - m["rows"][0]["step"] for m in metrics)
    return {"wall": wall, "time_split": split, "outside": wall - sum(split.values()),
            "ms_per_step": 1000 * split.get("steps", 0.0) / max(1, steps),
            "jit_compile": sorted({m["compiled"]["jit_compile"] for m in metrics}),
            "digests": sorted(m.get("weights_sha256") for m in metrics)}


def report_deterministic(runs):
    median = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    ratio = median["default"] / median["nondeterministic"]  # the same configuration on CPUs alone
    print(f"default / nondeterministic = {ratio:.3f} (median wall; target <= 1.05: "
          f"{'met' if ratio <= 1.05 else 'not met'}); no_xla / default = {median['no_xla'] / median['default']:.3f}")
    same = {name: len({tuple(r["digests"]) for r in rs}) == 1 for name, rs in runs.items()}
    xla_same = {tuple(r["digests"]) for r in runs["default"] + runs["nondeterministic"]}
    print(f"final weights identical over rounds: {same}; default and nondeterministic identical "
          f"(by construction on CPUs alone): {len(xla_same) == 1}")
    return {"ratio": ratio, "identical_over_rounds": same, "identical_with_and_without": len(xla_same) == 1}


def report_cells(runs):
    median = {name: {"wall": statistics.median(r["wall"] for r in rs),
                     "ms_per_step": statistics.median(r["ms_per_step"] for r in rs)} for name, rs in runs.items()}
    masked = median["masked"]
    out = {}
    print("\n| cell | wall s | ms / step | step / masked | wall / masked | allowed (1.3 x step ratio) | target |\n"
          "|---|---:|---:|---:|---:|---:|---|")
    for name, m in median.items():
        step_ratio, wall_ratio = m["ms_per_step"] / masked["ms_per_step"], m["wall"] / masked["wall"]
        met = name == "masked" or wall_ratio <= 1.3 * step_ratio
        out[name] = {**m, "step_ratio": step_ratio, "wall_ratio": wall_ratio, "met": met}
        print(f"| {name} | {m['wall']:.1f} | {m['ms_per_step']:.2f} | {step_ratio:.2f} | {wall_ratio:.2f} | "
              f"{1.3 * step_ratio:.2f} | {'—' if name == 'masked' else 'met' if met else 'not met'} |")
    print("\nwhere the time went (median seconds per part; outside: wall - the parts, per run):")
    for name, rs in runs.items():
        parts = sorted({p for r in rs for p in r["time_split"]})
        split = {p: statistics.median(r["time_split"].get(p, 0.0) for r in rs) for p in parts}
        split["outside"] = statistics.median(r["outside"] for r in rs)
        out[name]["time_split"] = split
        print(f"  {name}: " + ", ".join(f"{p} {s:.1f}" for p, s in split.items()))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--iterations", type=int, default=0, help="iterations per training (0: the preset's)")
    parser.add_argument("--eval_every", type=int, default=0, help="0: the flagfile's")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="", help="comma-separated variants of the preset (default: all)")
    parser.add_argument("--out", default="", help="the results as JSON (default: runs/bench_runs_<preset>.json)")
    args = parser.parse_args(argv)
    variants = PRESETS[args.preset]
    names = [v for v in args.variants.split(",") if v] or list(variants)
    iterations = args.iterations or DEFAULT_ITERATIONS[args.preset]
    if set(names) - set(variants) or args.rounds < 1 or iterations < 1:
        parser.error(f"--variants from {list(variants)}; --rounds >= 1; --iterations >= 1")
    from tflth import io, runs as run_folders
    out = args.out or os.path.join(REPO, "runs", f"bench_runs_{args.preset}.json")
    header = {**_bench.environment(), "args": vars(args), "iterations": iterations,
              "commit": run_folders.versions().get("commit")}  # "+": uncommitted changes
    runs = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="bench_runs_") as scratch:
        for round_ in range(args.rounds):
            for name in names:
                root, load = os.path.join(scratch, f"{name}_{round_}"), os.getloadavg()[0]
                runs[name].append(summary(*run_once(variants[name], root, iterations, args.eval_every), iterations))
                r = runs[name][-1]
                r["load"] = [load, os.getloadavg()[0]]  # the 1-minute load average before and after
                print(f"round {round_ + 1} {name}: {r['wall']:.1f} s wall, {r['ms_per_step']:.2f} ms/step, "
                      f"XLA {r['jit_compile']}, load {load:.1f}", flush=True)
                io.write_json(out, {**header, "runs": runs})  # what is done so far survives a failure
    result = (report_deterministic if args.preset == "deterministic" else report_cells)(
        runs) if set(names) == set(variants) else {}
    io.write_json(out, {**header, "runs": runs, "result": result})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
