"""Pruning: scores (the plug-in point), scores -> masks, allocation across layers, structured
and N:M patterns, schedules and callbacks."""
from tflth.pruning import saliency  # noqa: F401  (registers the gradient scores snip, taylor)
from tflth.pruning.allocation import ALLOCATIONS, allocate
from tflth.pruning.dynamic import SET, RigL
from tflth.pruning.flops import forward_flops
from tflth.pruning.callbacks import (PruneCallback, Rewind, Snapshot, SparsityLogger, StepCallback,
                                     keep_masks_after_ema)
from tflth.pruning.masks import apply_mask, get_masks, prunable_layers, set_masks, sparsity
from tflth.pruning.prunable import FEATURES, Prunable, deployed_weights, is_prunable
from tflth.pruning.pruner import (ROLES, SCOPES, check_prune_args, global_masks, layer_roles, layerwise_masks, prune,
                                  current_sparsity, prune_to, random_masks_like, straight_through)
from tflth.pruning.rewind import (fresh_weights, reset_optimizer, restore_optimizer, restore_weights,
                                  snapshot_optimizer, snapshot_weights)
from tflth.pruning.schedules import Every, OneShot, PolynomialDecay
from tflth.pruning.scores import available_scores, get_score, register_score, score_layers
from tflth.pruning.structured import prune_nm, prune_units

__all__ = ["Every", "OneShot", "PolynomialDecay", "PruneCallback", "Prunable", "Rewind", "RigL", "SET", "Snapshot",
           "SparsityLogger", "StepCallback", "allocate", "apply_mask", "available_scores", "current_sparsity",
           "deployed_weights", "forward_flops", "fresh_weights", "get_masks", "get_score", "is_prunable",
           "keep_masks_after_ema", "layer_roles", "prunable_layers", "prune", "prune_nm", "prune_to", "prune_units",
           "random_masks_like", "register_score", "reset_optimizer", "restore_optimizer", "restore_weights",
           "set_masks", "snapshot_optimizer", "snapshot_weights", "sparsity", "straight_through"]
