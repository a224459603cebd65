"""Structured pruning: whole units (neurons, conv filters) and N:M patterns.

- `prune_units` removes whole output units (a dense layer's neurons, a conv's filters) or input
  units (a dense layer's input neurons, a conv's input channels), ranked by the norm of their
  weights' scores: (mean s^p)^(1/p), so with the magnitude score p = 1 is the L1 norm and p = 2
  the L2 norm of the unit's weights (Li et al. 2017, "Pruning filters for efficient ConvNets"),
  divided by the unit's size. Scores that are constant over a group (an L0 neuron gate's
  "inclusion", a horseshoe's "horseshoe_scale") rank those groups as they are; their groups are
  a dense layer's input neurons but a conv's filters, so `side="group"` finds each layer's side
  from where its score is constant.
  `tflth.pruning.compact.compact` then builds the smaller plain Keras model.
- `prune_nm` keeps the N highest-scoring weights of every M consecutive weights along the input
  dimension (NVIDIA's 2:4 sparsity, Mishra et al. 2021; Zhou et al. 2021): for a dense kernel
  (in, out), M consecutive inputs of each output; for a conv kernel (h, w, in, out), M
  consecutive input channels at each position of each filter.
"""
import keras
import numpy as np

from tflth.pruning.masks import get_masks, set_masks
from tflth.pruning.pruner import _count, _remove_lowest, check_prune_args
from tflth.pruning.scores import score_layers

SIDES = ("output", "input", "group")


def unit_axis(kernel_shape, side):
    """The kernel axis that indexes units of `side`: the last (outputs) or the one before."""
    return len(kernel_shape) - 1 if side == "output" else len(kernel_shape) - 2


def unit_scores(score, mask, side, norm):
    """(sum over each unit's kept weights of score^norm / the unit's size)^(1/norm): the L1 or L2
    norm over the size, one value per unit; -inf for a unit with no weight left."""
    axis = unit_axis(score.shape, side)
    others = tuple(a for a in range(score.ndim) if a != axis)
    kept = mask.sum(axis=others)
    total = (np.abs(np.asarray(score, np.float64)) ** norm * mask).sum(axis=others)
    return np.where(kept > 0, (total / (score.size // score.shape[axis])) ** (1.0 / norm), -np.inf)


def group_side(score):
    """"input" if `score` is the same for every output unit of each input (a dense layer's L0
    neuron gates or horseshoe scales), else "output" (per-filter groups, or no groups)."""
    score = np.asarray(score)
    constant = lambda axis: np.all(score == np.take(score, [0], axis=axis))  # noqa: E731
    return "input" if constant(score.ndim - 1) and not constant(score.ndim - 2) else "output"


# The kinds whose kernel ends in (inputs, outputs), the layout units and N:M groups are read from;
# a depthwise kernel ends in (channels, multiplier), a transposed one in (outputs, inputs).
_LAYOUT = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _check_layout(layers, who):
    odd = [layer.name for layer in layers if not isinstance(layer, _LAYOUT)]
    if odd:
        raise ValueError(f"{who}: layers {odd} are not Dense or Conv1D/2D/3D, whose kernels end in (inputs, "
                         f"outputs); exclude them (exclude={odd})")


def prune_units(model, fraction, score="magnitude", side="output", norm=2, exclude=None, **context):
    """Removes `fraction` of the remaining units of every prunable layer (rounded up), the units
    of lowest `unit_scores`, by zeroing their whole row or column of the mask.

    side: "output" (neurons, filters), "input" (input neurons, input channels) or "group" (per
      layer, the side its score is constant over: `group_side`).
    exclude: layer names or roles left untouched; by default the output layer wherever its
      output units would be pruned (they are the classes).
    Returns the new masks."""
    if side not in SIDES:
        raise ValueError(f"side={side!r} is unknown; allowed: {list(SIDES)}")
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm={norm!r} must be 1 (L1) or 2 (L2)")
    protect_classes = exclude is None
    exclude = ("output",) if protect_classes and side == "output" else tuple(exclude or ())
    _, layers, _, roles = check_prune_args(model, fraction, score, "layerwise", None, exclude)
    _check_layout(layers, "prune_units")
    scores = score_layers(score, layers, model, **context)
    sides = {layer.name: group_side(scores[layer.name]) if side == "group" else side for layer in layers}
    if protect_classes:
        layers = [layer for layer in layers if not (roles[layer.name] == "output" and sides[layer.name] == "output")]
    masks = get_masks(model)
    new = {}
    for layer in layers:
        mask, side_ = masks[layer.name], sides[layer.name]
        per_unit = unit_scores(scores[layer.name], mask, side_, norm)
        alive = np.isfinite(per_unit).astype(np.float32)
        dead = _remove_lowest(per_unit, alive, _count(fraction, int(alive.sum())))
        shape = [1] * mask.ndim
        shape[unit_axis(mask.shape, side_)] = -1
        new[layer.name] = mask * dead.reshape(shape)
    set_masks(model, new)
    return new


def nm_mask(score, n, m):
    """The N:M mask of a kernel's `score` (groups of `m` along axis -2, the `n` highest kept)."""
    shape = score.shape
    moved = np.moveaxis(np.asarray(score, np.float64), -2, -1)  # (..., out, in)
    groups = moved.reshape(moved.shape[:-1] + (shape[-2] // m, m))
    order = np.argsort(-groups, axis=-1, kind="stable")
    keep = np.zeros_like(groups, dtype=np.float32)
    np.put_along_axis(keep, order[..., :n], 1.0, axis=-1)
    return np.moveaxis(keep.reshape(moved.shape), -1, -2)


def check_nm(n, m):
    for name, value in (("n", n), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"N:M sparsity: {name}={value!r} must be an integer >= 1")
    if n >= m:
        raise ValueError(f"N:M sparsity: n={n} must be < m={m} (n of every m weights are kept)")


def prune_nm(model, n=2, m=4, score="magnitude", exclude=(), **context):
    """Prunes every prunable layer (but those in `exclude`) to the N:M pattern (see the module
    docstring); weights already pruned count among the dropped ones. Returns the new masks."""
    check_nm(n, m)
    _, layers, _, _ = check_prune_args(model, 0.0, score, "layerwise", None, exclude)
    _check_layout(layers, "N:M sparsity")
    for layer in layers:
        size = layer.kernel.shape[-2]
        if size % m:
            raise ValueError(f"N:M sparsity: layer {layer.name!r} has {size} inputs (kernel axis -2), not a "
                             f"multiple of m={m}; exclude it (exclude=[{layer.name!r}])")
    scores = score_layers(score, layers, model, **context)
    masks = get_masks(model)
    new = {layer.name: masks[layer.name] * nm_mask(np.where(masks[layer.name] > 0, scores[layer.name], -np.inf), n, m)
           for layer in layers}
    set_masks(model, new)
    return new
