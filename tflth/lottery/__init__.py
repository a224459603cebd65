"""Lottery-ticket experiments: hyperparameters, run folders, the resumable runner."""
from tflth.lottery import paths
from tflth.lottery.branches import CONTROLS
from tflth.lottery.hparams import (DatasetHparams, LotteryHparams, ModelHparams, PruningHparams,
                                   TrainingHparams)
from tflth.lottery.runner import Replicate, run

__all__ = ["DatasetHparams", "LotteryHparams", "ModelHparams", "PruningHparams", "Replicate", "TrainingHparams",
           "paths", "run"]
