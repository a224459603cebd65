"""Pruning: scores (the plug-in point), scores -> masks, schedules and callbacks."""
from tflth.pruning.callbacks import PruneCallback, Rewind, Snapshot, SparsityLogger, keep_masks_after_ema
from tflth.pruning.masks import apply_mask, get_masks, prunable_layers, set_masks, sparsity
from tflth.pruning.pruner import (ROLES, SCOPES, check_prune_args, global_masks, layer_roles, layerwise_masks, prune,
                                  random_masks_like)
from tflth.pruning.rewind import (fresh_weights, reset_optimizer, restore_optimizer, restore_weights,
                                  snapshot_optimizer, snapshot_weights)
from tflth.pruning.schedules import Every, OneShot, PolynomialDecay
from tflth.pruning.scores import available_scores, get_score, register_score

__all__ = [
    "Every", "OneShot", "PolynomialDecay", "PruneCallback", "ROLES", "Rewind", "SCOPES", "Snapshot",
    "SparsityLogger", "apply_mask", "available_scores", "check_prune_args", "fresh_weights", "get_masks", "get_score",
    "global_masks", "keep_masks_after_ema", "layer_roles", "layerwise_masks", "prunable_layers", "prune",
    "random_masks_like", "register_score", "reset_optimizer", "restore_optimizer", "restore_weights", "set_masks",
    "snapshot_optimizer", "snapshot_weights", "sparsity",
]
