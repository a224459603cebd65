"""The ablation study: methods x % of weights kept x seeds on one dataset and model.

Each cell is a run of the sparse-training runner (IMP: one lottery run per study, to the
deepest level needed), so its folder is named by the hash of its hyperparameters: rerunning the
study skips finished cells and resumes a killed one. `collect` reads what is finished, with
each cell's per-example test correctness and training cost; `tflth.ablation.report` turns it
into tables, statistics and plots.

    <root>/sparse_<hash>/...     one per (method, % kept), all seeds inside
    <root>/lottery_<hash>/...    IMP
    <out>/ablation.json, ablation.md, ablation.png
"""
import dataclasses
import os

from tflth import io, runs, schema
from tflth.ablation import methods as m
from tflth.lottery import paths as lottery_paths
from tflth.lottery import runner as lottery
from tflth.lottery.hparams import LotteryHparams, PruningHparams
from tflth.lottery.hparams import ModelHparams as LotteryModel
from tflth.pruning import flops
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
    if imp_hparams(study, method).pruning.rewind_iteration:
        paths.append(lottery_paths.metrics(lottery_paths.pretrain_dir(replicate)))
    parts = [_read(p) or {} for p in paths]  # a part gone missing makes the total unknown, not smaller
    return folder, {**metrics, **{key: _total(part.get(key) for part in parts) for key in schema.COST}}


def _total(values):
    """The sum, or None if a value is missing (a part trained before tflth recorded it)."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def collect(study, methods, keep, seeds, root):
    """[{method, keep, seeds, kept (% by masks), error, val_error (%, final), iterations, seconds,
    cpu_seconds, flops_sparse, flops_dense (training FLOPs, `tflth.pruning.flops`), correct (per
    test example, `tflth.io.pack_bits`), folder, commit (of the tflth that trained it)}] per cell
    and seed that is finished; the rest is listed under "missing"; "dense_flops": the training
    FLOPs of the dense network (masked family, no mask) trained for the study's iterations, what
    the tables divide training FLOPs by."""
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
                _check_bits(metrics, folder, seed)
                cells.append({"method": method, "keep": k, "seed": seed, "kept": kept,
                              "error": 100.0 * (1.0 - metrics["final_test_acc"]),
                              "val_error": 100.0 * (1.0 - metrics["rows"][-1]["val_acc"]), "iterations": spent,
                              **{key: metrics.get(key) for key in schema.COST},
                              "correct": metrics.get("test_correct"), "folder": folder,
                              "commit": (metrics.get("versions") or {}).get("commit")})
    return {"cells": cells, "missing": missing, "dense_flops": dense_flops(study)}


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
    return {**result, "cells": cells, "missing": missing}


def _check_bits(metrics, folder, seed):
    """The per-example results must give the final test accuracy the cell reports (within one
    example): the paired tests and the error column then describe the same networks."""
    if metrics.get("test_correct"):
        bits = io.unpack_bits(metrics["test_correct"])
        if abs(bits.mean() - metrics["final_test_acc"]) > 1.0 / len(bits):
            raise ValueError(f"{folder} seed {seed}: its per-example test results give accuracy {bits.mean():.4f}, "
                             f"its metrics {metrics['final_test_acc']:.4f}; the run's files disagree")


def dense_flops(study):
    forward = flops.forward_flops(lottery.build_model(imp_hparams(study), 0))["dense"]
    step = flops.step_flops(forward, study.dataset.batch_size)  # None where a layer's shapes are unknown
    return None if step is None else step * study.training.iterations


def _cell_key(cell):
    return cell["method"], float(cell["keep"]), cell["seed"], os.path.basename(os.path.normpath(cell["folder"]))
