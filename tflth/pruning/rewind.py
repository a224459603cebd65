"""Rewinding: putting the surviving weights (and the optimizer) back in time.

Plain functions; the callbacks and the lottery runner both call them.
"""
import keras
import numpy as np

from tflth import internals
from tflth.arguments import is_integer
from tflth.pruning.masks import apply_mask, prunable_layers


def _unmasked(model):
    masks = {id(layer.mask) for layer in prunable_layers(model)}
    return [v for v in model.weights if id(v) not in masks]


def snapshot_weights(model):
    """Every model variable except the masks, as arrays in `model.weights` order.

    Kept by position, not by variable path, so a snapshot fits any instance of
    the same architecture (paths carry auto-generated layer names).
    """
    return [v.numpy() for v in _unmasked(model)]


def _assign_all(variables, arrays, what):
    if len(arrays) != len(variables):
        raise ValueError(f"{what} holds {len(arrays)} arrays, the model {len(variables)} variables")
    for v, w in zip(variables, arrays):
        if tuple(v.shape) != np.shape(w):
            raise ValueError(f"{what} entry for {v.path!r} has shape {np.shape(w)}, the variable {tuple(v.shape)}")
    for v, w in zip(variables, arrays):
        v.assign(w)


def restore_weights(model, snapshot):
    """Assigns a snapshot back (masks untouched), then zeroes pruned weights."""
    _assign_all(_unmasked(model), snapshot, "snapshot")
    for layer in prunable_layers(model):
        apply_mask(layer)


def fresh_weights(model, seed):
    """A snapshot of newly initialised weights for `model` (the re-init control), the same for
    the same integer `seed`, with nothing process-wide changed: the clone is made with Python's,
    NumPy's and Keras' generators seeded as keras.utils.set_random_seed(seed) seeds them (which
    gave the re-inits of earlier runs), then put back (`tflth.internals.seeded`)."""
    if not is_integer(seed):
        raise ValueError(f"seed={seed!r}: must be an integer")
    with internals.seeded(int(seed)):
        return snapshot_weights(keras.models.clone_model(model))


def snapshot_optimizer(model):
    """The optimizer's variables (step counter, moments, ...) as arrays."""
    return [v.numpy() for v in model.optimizer.variables]


def restore_optimizer(model, snapshot):
    """Puts back an optimizer snapshot: moments *and* the step they belong to, so Adam's bias
    correction and any learning-rate schedule agree with the moments."""
    _assign_all(model.optimizer.variables, snapshot, "optimizer snapshot")


def reset_optimizer(model):
    """Returns the optimizer to its freshly built state: zero moments, step 0, a learning-rate
    schedule at its start. Works for any Keras optimizer, a loss-scale wrapper included
    (its loss scale is reset to the initial one, not to zero), because the fresh values come
    from a new optimizer of the same config built on the same variables."""
    optimizer = model.optimizer
    fresh = optimizer.__class__.from_config(optimizer.get_config())
    if optimizer.built:  # else it has no slots yet, only its step and learning rate
        fresh.build(model.trainable_variables)
    _assign_all(optimizer.variables, [v.numpy() for v in fresh.variables], "fresh optimizer")
