"""The trained model of a run folder: a lottery run's level (and branch), or a sparse-training
run's seed (the L0, Bayesian and ablation recipes), rebuilt from its hparams.json and loaded
from its final weights."""
import os

from tflth import runs, schema
from tflth.lottery import paths as lottery_paths
from tflth.lottery import runner as lottery
from tflth.lottery.hparams import LotteryHparams
from tflth.trainer import runner as trainer
from tflth.trainer.hparams import TrainerHparams


def _finished_levels(replicate):
    names = os.listdir(replicate) if os.path.isdir(replicate) else ()
    found = [level for level in (schema.number_of(schema.LEVEL, name) for name in names) if level is not None]
    return sorted(level for level in found if os.path.exists(
        lottery_paths.metrics(lottery_paths.branch_dir(replicate, level, "main"))))


def load(run_dir, seed=0, level=None, branch="main"):
    """(model, hparams, a one-line description); ValueError naming the argument if the folder
    holds no such finished training."""
    run_dir = os.path.normpath(run_dir)
    kind = os.path.basename(run_dir).split("_")[0]
    if not os.path.exists(runs.hparams_file(run_dir)) or kind not in ("lottery", "sparse"):
        raise ValueError(f"--run_dir={run_dir}: not a run folder (expected lottery_<hash> or sparse_<hash> "
                         "holding hparams.json)")
    if kind == "lottery" and branch not in lottery_paths.BRANCHES:
        raise ValueError(f"--branch={branch!r} is unknown; allowed: {', '.join(lottery_paths.BRANCHES)}")
    if kind == "sparse" and branch != "main":
        raise ValueError(f"--branch={branch!r}: only lottery runs have branches; {run_dir} is a sparse-training run")
    if kind == "lottery":
        hparams = runs.read_hparams(run_dir, LotteryHparams)
        replicate = lottery_paths.replicate_dir(run_dir, seed)
        finished = _finished_levels(replicate)
        if level is None or level not in finished:
            raise ValueError(f"--level={level}: give a finished level of {replicate}; finished: "
                             f"{', '.join(map(str, finished)) or 'none'}")
        folder = lottery_paths.branch_dir(replicate, level, branch)
        model, what = lottery.build_model(hparams, seed), f"replicate {seed} level {level} ({branch})"
    else:
        if level is not None:
            raise ValueError(f"--level={level}: only lottery runs have levels; {run_dir} is a sparse-training run")
        hparams = runs.read_hparams(run_dir, TrainerHparams)
        folder = trainer.seed_dir(run_dir, seed)
        model, what = trainer.build_model(hparams, seed), f"seed {seed}"
    if not os.path.exists(runs.metrics_file(folder)):
        raise ValueError(f"{folder} holds no finished training (no metrics.json); check --seed"
                         + (" and --branch" if kind == "lottery" else ""))
    if kind == "lottery":
        runs.load_final_weights(model, folder)
    else:
        trainer.load_final(model, hparams, folder)
        if hparams.sparsity.keep_percent:  # as the run tested it after training
            what += f", pruned to {hparams.sparsity.keep_percent:g}% (--keep_percent)"
    return model, hparams, f"{run_dir} {what}"
