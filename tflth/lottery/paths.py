"""Every file name of a lottery-ticket run, in one place (built from `tflth.schema`'s names where tools
read them back).

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
from tflth import io, runs, schema
from tflth.schema import BRANCHES


def run_dir(root, hparams):
    return runs.run_dir(root, schema.LOTTERY, hparams)


def replicate_dir(run, seed):
    return os.path.join(run, schema.REPLICATE.format(seed))


def level_dir(replicate, level):
    return os.path.join(replicate, schema.LEVEL.format(level))


def branch_dir(replicate, level, branch):
    return os.path.join(level_dir(replicate, level), branch)


hparams_file, flags_file = runs.hparams_file, runs.flags_file


def level_masks(replicate, level):
    return os.path.join(level_dir(replicate, level), "masks.npz")


def read_level_masks(replicate, level):
    """Level `level`'s masks; if the file is damaged, the error says how to write it again (the
    stage that wrote it must run again: the previous ticket's pruning, or the rewind point)."""
    writer = (metrics(branch_dir(replicate, level - 1, "main")) if level > 0 else rewind_state(replicate))
    return io.read_masks(level_masks(replicate, level), remedy=f"remove it and {writer}, then rerun the same "
                                                                 "command to write it again")


def init_state(replicate):
    return os.path.join(replicate, "init.npz")


def rewind_state(replicate):
    return os.path.join(replicate, "rewind.npz")


def pretrain_dir(replicate):
    return os.path.join(replicate, "pretrain")


metrics, final_weights = runs.metrics_file, runs.final_weights


def branch_masks(branch):
    return os.path.join(branch, "masks.npz")
