"""The ablation study: methods x % of weights kept x seeds on one dataset and model.

Each cell is a run of the sparse-training runner (IMP: one lottery run per study, to the
deepest level needed), so its folder is named by the hash of its hyperparameters: rerunning the
study skips finished cells and resumes a killed one. `collect` reads what is finished; `table`
(test error) and `plot` (test accuracy) show it against % of weights kept, mean and std over
seeds, with the training iterations and time each method spent.

    <root>/sparse_<hash>/...     one per (method, % kept), all seeds inside
    <root>/lottery_<hash>/...    IMP
    <out>/ablation.json, ablation.md, ablation.png
"""
import dataclasses
import os

import numpy as np

from tflth import io, runs
from tflth.ablation import methods as m
from tflth.lottery import paths as lottery_paths
from tflth.lottery import runner as lottery
from tflth.lottery.hparams import LotteryHparams, PruningHparams
from tflth.lottery.hparams import ModelHparams as LotteryModel
from tflth.trainer import runner as trainer
from tflth.trainer.hparams import ModelHparams, TrainerHparams


@dataclasses.dataclass(frozen=True)
class Study:
    """What every cell shares: data, model, training (the sections of `tflth.engine`)."""
    dataset: object
    model: str
    training: object


def sparse_hparams(study, method, keep):
    return TrainerHparams(study.dataset, ModelHparams(study.model), study.training,
                          m.sparsity_hparams(method, keep, study.training.iterations))


def imp_hparams(study, method="imp"):
    return LotteryHparams(study.dataset, LotteryModel(study.model), study.training,
                          PruningHparams(**m.imp_pruning(method, study.training.iterations)))


def _imp_runs(methods, keep):
    """{IMP method: (its control branches asked for, the levels of `keep`)}, in method order."""
    out = {}
    for method in filter(m.is_imp, methods):
        base, branch = m.split(method)
        out.setdefault(base, [])
        if branch and branch not in out[base]:
            out[base].append(branch)
    return {base: (tuple(controls), sorted({m.imp_levels(k) for k in keep})) for base, controls in out.items()}


def check(study, methods, keep, root=None):
    """Everything checkable before data is read or a folder is written."""
    m.check_methods(methods)
    m.check_keep(keep)
    for base, (controls, levels) in _imp_runs(methods, keep).items():
        lottery.check_run_args(imp_hparams(study, base), max(levels), controls, root=root)
    for method in methods:
        for k in [] if m.is_imp(method) else keep:
            trainer.check_run_args(sparse_hparams(study, method, k), root)


def run(study, methods, keep, seeds=(0,), root="runs", data=None, data_dir=None, verbose=True, **train_kw):
    """Runs (or resumes, or skips) every cell, in method order (an IMP method's control branches
    with its first appearance); returns `collect`'s result."""
    check(study, methods, keep, root)
    data = data or runs.load_data(imp_hparams(study), data_dir)
    imp_runs = _imp_runs(methods, keep)
    for method in methods:
        if m.is_imp(method):
            controls, levels = imp_runs.pop(m.split(method)[0], (None, None))
            if levels:
                lottery.run(imp_hparams(study, method), levels=max(levels), seeds=seeds, controls=controls,
                            control_levels=levels, root=root, data=data, verbose=verbose, **train_kw)
        else:
            for k in keep:
                if verbose:
                    print(f"[ablation] {method} at {k:g}% of the weights", flush=True)
                trainer.run(sparse_hparams(study, method, k), seeds=seeds, root=root, data=data,
                            verbose=verbose, **train_kw)
    return collect(study, methods, keep, seeds, root)


def _read(path):
    return io.read_json(path) if os.path.exists(path) else None


def _imp_cell(study, method, keep, seed, root):
    """(run folder, metrics of the cell with the cost of every training it needed, or None):
    levels 0..L-1 of the ticket, then level L of the branch, and the iterations 0..k trained once
    for the rewind point."""
    level, branch = m.imp_levels(keep), m.split(method)[1] or "main"
    folder = lottery_paths.run_dir(root, imp_hparams(study, method))
    replicate = lottery_paths.replicate_dir(folder, seed)
    paths = [lottery_paths.metrics(lottery_paths.branch_dir(replicate, lv, "main")) for lv in range(level)]
    paths.append(lottery_paths.metrics(lottery_paths.branch_dir(replicate, level, branch)))
    metrics = _read(paths[-1])
    if metrics is None:
        return folder, None
    parts = [_read(p) for p in paths] + [_read(lottery_paths.metrics(lottery_paths.pretrain_dir(replicate))) or {}]
    return folder, {**metrics, **{key: _total(part.get(key) for part in parts if part)
                                  for key in ("seconds", "cpu_seconds", "flops_sparse", "flops_dense")}}


def _total(values):
    """The sum, or None if a value is missing (a part trained before tflth recorded it)."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def collect(study, methods, keep, seeds, root):
    """[{method, keep, seeds, kept (% by masks), error, val_error (%, final), iterations, seconds, cpu_seconds,
    flops_sparse, flops_dense (training FLOPs, `tflth.pruning.flops`), correct (per test
    example, `tflth.io.pack_bits`)}] per cell and seed that is finished; the rest is listed
    under "missing"."""
    cells, missing = [], []
    iterations = study.training.iterations
    for method in methods:
        for k in keep:
            for seed in seeds:
                if m.is_imp(method):
                    folder, metrics = _imp_cell(study, method, k, seed, root)
                    rewind = imp_hparams(study, method).pruning.rewind_iteration
                    spent = rewind + (m.imp_levels(k) + 1) * (iterations - rewind)
                    kept = metrics and metrics["weights_remaining"]
                else:
                    folder = trainer.run_dir(root, sparse_hparams(study, method, k))
                    metrics = _read(runs.metrics_file(trainer.seed_dir(folder, seed)))
                    spent = iterations
                    kept = metrics and metrics.get("mask_weights_remaining", metrics["weights_remaining"])
                if metrics is None:
                    missing.append({"method": method, "keep": k, "seed": seed, "folder": folder})
                    continue
                cells.append({"method": method, "keep": k, "seed": seed, "kept": kept,
                              "error": 100.0 * (1.0 - metrics["final_test_acc"]),
                              "val_error": 100.0 * (1.0 - metrics["rows"][-1]["val_acc"]), "iterations": spent,
                              **{key: metrics.get(key) for key in ("seconds", "cpu_seconds", "flops_sparse",
                                                                   "flops_dense")},
                              "correct": metrics.get("test_correct"), "folder": folder})
    return {"cells": cells, "missing": missing}


def add_recorded(result, recorded):
    """`result` with its missing cells taken from `recorded` (an earlier ablation.json) where one
    there has the same method, % kept, seed and run folder name: the folder's hash names the
    hyperparameters, so it is the same computation, finished on a machine whose runs/ are gone.
    Such cells are marked "recorded"; a cell finished here always wins."""
    done = {_cell_key(c): c for c in recorded.get("cells", [])}
    cells, missing = list(result["cells"]), []
    for cell in result["missing"]:
        if _cell_key(cell) in done:
            cells.append({**done[_cell_key(cell)], "recorded": True})
        else:
            missing.append(cell)
    return {"cells": cells, "missing": missing}


def _cell_key(cell):
    return cell["method"], float(cell["keep"]), cell["seed"], os.path.basename(os.path.normpath(cell["folder"]))


def summary(result, methods, keep):
    """{method: {keep: {error, error_std, kept, n}}, and per method its iterations and seconds}."""
    out = {}
    for method in methods:
        rows = {}
        for k in keep:
            mine = [c for c in result["cells"] if c["method"] == method and c["keep"] == k]
            if mine:
                errors = np.array([c["error"] for c in mine])
                rows[k] = {"error": float(errors.mean()), "error_std": float(errors.std(ddof=1)) if len(mine) > 1
                           else None, "kept": float(np.mean([c["kept"] for c in mine])), "n": len(mine),
                           "iterations": mine[0]["iterations"],
                           "seconds": float(np.mean([c["seconds"] for c in mine if c["seconds"] is not None]
                                                    or [np.nan]))}
        out[method] = rows
    return out


def table(summary_, keep, title=None, recorded=0):
    """Markdown: one row per method, test error (mean ± std over seeds) at each % kept, and the
    training iterations (and minutes) it spent per cell; `recorded`: how many cells came from an
    earlier ablation.json (`add_recorded`)."""
    head = ["Method"] + [f"{k:g}% kept: error %" for k in keep] + ["Iterations per cell", "Minutes per cell"]
    lines = ([f"# {title}", ""] if title else []) + ["| " + " | ".join(head) + " |",
                                                     "|---|" + "---:|" * (len(head) - 1)]
    for method, rows in summary_.items():
        cells = []
        for k in keep:
            r = rows.get(k)
            if r is None:
                cells.append("—")
                continue
            text = f"{r['error']:.2f}" + (f" ± {r['error_std']:.2f}" if r["error_std"] is not None else "")
            if abs(r["kept"] - k) > 0.05 * k:
                text += f" (at {r['kept']:.2f}%)"
            cells.append(text + (f" (n={r['n']})" if r["n"] == 1 else ""))
        spent = {r["iterations"] for r in rows.values()}
        seconds = [r["seconds"] for r in rows.values() if np.isfinite(r["seconds"])]
        cells += [", ".join(f"{s:,}" for s in sorted(spent)) or "—",
                  f"{np.mean(seconds) / 60:.1f}" if seconds else "—"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Final test error after the method's training; mean ± sample std over seeds (n=1: one seed). "
              "A figure in brackets is the % of weights actually kept where it is more than 5% off the target. "
              "Iterations: every method trains T once, IMP (T + T per level) to its level. Allocation: random, "
              "set and rigl ERK, the others global (tflth/ablation/methods.py)."]
    if recorded:
        lines[-1] += (f" {recorded} cells were read from the ablation.json this table replaces: runs finished "
                      "earlier, on a machine whose run folders are gone (same folder hash, same computation).")
    return "\n".join(lines) + "\n"


def plot(summary_, path, title=None):
    """Test accuracy against % of weights kept (log x axis), error bars (sample std) over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, rows in summary_.items():
        if not rows:
            continue
        ks = sorted(rows, reverse=True)
        ax.errorbar([rows[k]["kept"] for k in ks], [100.0 - rows[k]["error"] for k in ks],
                    yerr=[rows[k]["error_std"] or 0.0 for k in ks], marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.minorticks_off()
    targets = sorted({k for rows in summary_.values() for k in rows})
    ax.set_xticks(targets, labels=[f"{k:g}" for k in targets])
    ax.invert_xaxis()
    ax.set_xlabel("% of weights kept")
    ax.set_ylabel("test accuracy %")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write(result, methods, keep, out, title=None):
    """ablation.json, ablation.md and ablation.png in `out` (each written atomically)."""
    os.makedirs(out, exist_ok=True)
    s = summary(result, methods, keep)
    io.write_json(os.path.join(out, "ablation.json"), {"summary": {meth: {str(k): v for k, v in rows.items()}
                                                                   for meth, rows in s.items()}, **result})
    text = table(s, keep, title, recorded=sum(bool(c.get("recorded")) for c in result["cells"]))
    io.write_text(os.path.join(out, "ablation.md"), text)
    plot(s, os.path.join(out, "ablation.png"), title)
    return text
