"""Every file name of a lottery-ticket run, in one place.

<root>/lottery_<hash>/hparams.json, flags.txt             hparams.json also holds the folder's format
  replicate_<seed>/init.npz                                 weights at iteration 0
    rewind.npz                                              weights and optimizer state at iteration k
    pretrain/                                               iterations 0..k (when k > 0): metrics.json, tb/
    level_<L>/masks.npz                                     the ticket's masks at level L
    level_<L>/<branch>/metrics.json                         written last: the branch is done
                       final.weights.h5, masks.npz, tb/     weights at the end, masks, TensorBoard
                       progress.npz                         resume point (weights, optimizer, rows)
"""
import os

from tflth.engine import progress_file as progress
from tflth.engine import tensorboard_dir as tensorboard
from tflth import runs

BRANCHES = ("main", "reinit", "random_prune", "continue")


def run_dir(root, hparams):
    return runs.run_dir(root, "lottery", hparams)


def replicate_dir(run, seed):
    return os.path.join(run, f"replicate_{seed}")


def level_dir(replicate, level):
    return os.path.join(replicate, f"level_{level}")


def branch_dir(replicate, level, branch):
    return os.path.join(level_dir(replicate, level), branch)


hparams_file, flags_file = runs.hparams_file, runs.flags_file


def level_masks(replicate, level):
    return os.path.join(level_dir(replicate, level), "masks.npz")


def init_state(replicate):
    return os.path.join(replicate, "init.npz")


def rewind_state(replicate):
    return os.path.join(replicate, "rewind.npz")


def pretrain_dir(replicate):
    return os.path.join(replicate, "pretrain")


metrics, final_weights = runs.metrics_file, runs.final_weights


def branch_masks(branch):
    return os.path.join(branch, "masks.npz")
