"""Sparse training, one model per seed: L0 gates or a MAP penalty, then the gates turned into
masks (and optionally pruning to a matched % of weights), through the one engine."""
from tflth.trainer.hparams import PENALTIES, SECTIONS, SparsityHparams, TrainerHparams
from tflth.trainer.runner import run

__all__ = ["SparsityHparams", "TrainerHparams", "run"]
