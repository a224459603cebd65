"""A model's training state as named arrays: variables by path, optimizer slots checked by name.

Used for resume checkpoints and for the weights (and optimizer state) of a rewind point.
A model variable is found by its path ("fc1/kernel"), never by another class's save order;
the state covers `model.variables`, so random-generator states (dropout, stochastic gates)
resume too. Those are keyed by their order among the model's generators ("seed/0"), since
Keras names them from a process-wide counter ("seed_generator_3"). An optimizer variable is matched by position *and* checked by its name without
the optimizer's own prefix ("fc1_kernel_momentum"), since that prefix varies ("adam_3").
"""
import collections

import numpy as np

from tflth import io
from tflth.pruning.masks import apply_mask, prunable_layers

MODEL, OPTIMIZER = "model/", "optimizer/"


def _model_variables(model, masks):
    """[(variable, key)] of the model's variables to save."""
    skip = set() if masks else {id(layer.mask) for layer in prunable_layers(model)}
    pairs, seeds = [], 0
    for v in model.variables:
        if id(v) in skip:
            continue
        if v.path.endswith("seed_generator_state"):
            pairs.append((v, f"{MODEL}seed/{seeds}"))
            seeds += 1
        else:
            pairs.append((v, MODEL + v.path))
    repeated = [k for k, n in collections.Counter(k for _, k in pairs).items() if n > 1]
    if repeated:
        raise ValueError(f"variable paths {repeated[:3]} repeat in model {model.name!r}: name its layers "
                         "uniquely so that its state can be saved by name")
    return pairs


def _slot_name(variable):
    return variable.path.split("/", 1)[-1]


def capture(model, optimizer=True, masks=True):
    """{key: array} of the model's variables (masks too unless `masks=False`) and, with
    `optimizer=True`, of its optimizer's."""
    state = {key: v.numpy() for v, key in _model_variables(model, masks)}
    if optimizer:
        state.update({f"{OPTIMIZER}{i:04d}/{_slot_name(v)}": v.numpy()
                      for i, v in enumerate(model.optimizer.variables)})
    return state


def restore(model, state, weights=True, optimizer=True, masks=True):
    """Assigns a captured state back, the model's variables (without the masks if
    `masks=False`) and/or the optimizer's; all is checked before anything is assigned."""
    pairs = _model_variables(model, masks) if weights else []
    if optimizer:
        saved = sorted(k for k in state if k.startswith(OPTIMIZER))
        if len(saved) != len(model.optimizer.variables):
            raise ValueError(f"the saved state holds {len(saved)} optimizer variables, "
                             f"the model's optimizer {len(model.optimizer.variables)}")
        wrong = [k for v, k in zip(model.optimizer.variables, saved) if k.split("/", 2)[-1] != _slot_name(v)]
        if wrong:
            raise ValueError(f"the saved optimizer state does not match this optimizer (first: {wrong[0]})")
        pairs += list(zip(model.optimizer.variables, saved))
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
