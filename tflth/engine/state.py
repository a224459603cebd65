"""A model's training state as named arrays: weights by variable path, optimizer slots checked by name.

Used for resume checkpoints and for the weights (and optimizer state) of a rewind point.
Keys never depend on another class's save order: a model variable is found by its path
("fc1/kernel"); an optimizer variable by its position *and* its name without the optimizer's
own prefix ("fc1_kernel_momentum"), which must match.
"""
import numpy as np

from tflth import io
from tflth.pruning.masks import apply_mask, prunable_layers

MODEL, OPTIMIZER = "model/", "optimizer/"


def _mask_paths(model):
    return {layer.mask.path for layer in prunable_layers(model)}


def _slot_name(variable):
    return variable.path.split("/", 1)[-1]


def capture(model, optimizer=True, masks=True):
    """{key: array} of the model's variables (masks too unless `masks=False`) and, with
    `optimizer=True`, of its optimizer's."""
    skip = set() if masks else _mask_paths(model)
    state = {MODEL + v.path: v.numpy() for v in model.weights if v.path not in skip}
    if optimizer:
        state.update({f"{OPTIMIZER}{i:04d}/{_slot_name(v)}": v.numpy()
                      for i, v in enumerate(model.optimizer.variables)})
    return state


def restore(model, state, weights=True, optimizer=True, masks=True):
    """Assigns a captured state back, the model's variables (without the masks if
    `masks=False`) and/or the optimizer's; all is checked before anything is assigned."""
    skip = set() if masks else _mask_paths(model)
    pairs = [(v, MODEL + v.path) for v in model.weights if v.path not in skip] if weights else []
    if optimizer:
        saved = sorted(k for k in state if k.startswith(OPTIMIZER))
        if len(saved) != len(model.optimizer.variables):
            raise ValueError(f"the saved state holds {len(saved)} optimizer variables, "
                             f"the model's optimizer {len(model.optimizer.variables)}")
        pairs += [(v, k) for v, k in zip(model.optimizer.variables, saved)]
        wrong = [k for v, k in pairs[-len(saved):] if k.split("/", 2)[-1] != _slot_name(v)] if saved else []
        if wrong:
            raise ValueError(f"the saved optimizer state does not match this optimizer (first: {wrong[0]})")
    missing = [k for _, k in pairs if k not in state]
    if missing:
        raise ValueError(f"the saved state lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    for v, k in pairs:
        if tuple(v.shape) != np.shape(state[k]):
            raise ValueError(f"saved {k} has shape {np.shape(state[k])}, the variable {tuple(v.shape)}")
    for v, k in pairs:
        v.assign(state[k])
    for layer in prunable_layers(model):
        apply_mask(layer)


def save(path, model, optimizer=True, masks=True, **extra):
    """Writes the state (and `extra` arrays) atomically to an .npz file."""
    io.write_npz(path, {**capture(model, optimizer, masks), **extra}, compress=False)


def load(path):
    return io.read_npz(path)
