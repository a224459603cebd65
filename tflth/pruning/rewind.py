"""Rewinding: putting the surviving weights (and the optimizer) back in time.

Plain functions; the callbacks and the lottery runner both call them.
"""
import keras
import numpy as np

from tflth.pruning.masks import apply_mask, prunable_layers


def _unmasked(model):
    masks = {id(layer.mask) for layer in prunable_layers(model)}
    return [v for v in model.weights if id(v) not in masks]


def snapshot_weights(model):
    """Every model variable except the masks, as arrays in `model.weights` order.

    Kept by position, not by variable path, so a snapshot fits any instance of
    the same architecture (paths carry auto-generated model names).
    """
    return [v.numpy() for v in _unmasked(model)]


def restore_weights(model, snapshot):
    """Assigns a snapshot back (masks untouched), then zeroes pruned weights."""
    variables = _unmasked(model)
    if len(snapshot) != len(variables):
        raise ValueError(f"snapshot holds {len(snapshot)} arrays, the model {len(variables)} variables")
    for v, w in zip(variables, snapshot):
        if tuple(v.shape) != np.shape(w):
            raise ValueError(f"snapshot entry for {v.path!r} has shape {np.shape(w)}, the variable {tuple(v.shape)}")
    for v, w in zip(variables, snapshot):
        v.assign(w)
    for layer in prunable_layers(model):
        apply_mask(layer)


def fresh_weights(model, seed):
    """A snapshot of newly initialised weights for `model` (the re-init control).

    Seeds Keras' global generators (keras.utils.set_random_seed) to be reproducible.
    """
    keras.utils.set_random_seed(seed)
    return snapshot_weights(keras.models.clone_model(model))


def reset_optimizer(optimizer, iterations=None):
    """Clears the optimizer's state (momenta, moments) and optionally sets its step.

    Setting `iterations` rewinds any learning-rate schedule to that step.
    """
    keep = {id(optimizer.iterations)}
    if isinstance(getattr(optimizer, "_learning_rate", None), keras.Variable):
        keep.add(id(optimizer._learning_rate))
    start = float(getattr(optimizer, "initial_accumulator_value", 0.0))  # Adagrad starts above 0
    for v in optimizer.variables:
        if id(v) not in keep:
            v.assign(np.full(v.shape, start if "accumulator" in v.path else 0.0, dtype=v.dtype))
    if iterations is not None:
        optimizer.iterations.assign(iterations)
