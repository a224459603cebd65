"""Scores -> masks. Masks only ever shrink."""
import keras
import numpy as np

from tflth.arguments import is_number
from tflth.pruning.prunable import require
from tflth.pruning import allocation as allocation_lib
from tflth.pruning.masks import apply_mask, get_masks, prunable_layers, set_masks
from tflth.pruning.scores import get_score, score_layers

SCOPES = ("layerwise", "global")
"""How `prune` ranks weights: within each layer, or over all layers at once."""
_DENSE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)  # the rest convolve
ROLES = ("conv", "dense", "output")
"""What a layer is for `exclude=` and `overrides=`: a conv layer, a dense layer, the output layer."""


def layer_roles(model):
    """{layer name: role}: "output" for the last prunable layer, else "conv" or "dense".

    Roles let the lottery-ticket paper's rates be written once for any model:
    20% for dense layers, 10% for the output layer, 10-15% for conv layers.
    """
    layers = prunable_layers(model)
    roles = {}
    for i, layer in enumerate(layers):
        if i == len(layers) - 1:
            roles[layer.name] = "output"
        else:
            roles[layer.name] = "dense" if isinstance(layer, _DENSE) else "conv"
    return roles


def _check_fraction(value, what):
    if not (is_number(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{what}={value!r} must be a number in [0, 1)")


def _remove_lowest(score, mask, count):
    """Clears the `count` lowest-scoring entries among those still kept."""
    new = mask.reshape(-1).copy()
    kept = np.flatnonzero(new)
    count = min(count, kept.size)  # prune_to's global remainder may ask for more than is left
    if count <= 0:
        return new.reshape(mask.shape)
    values = np.asarray(score).reshape(-1)[kept]
    # The entries a stable sort would put first (ties go by position; NaN sorts last), found
    # in O(n) with a partition: a full sort of VGG-19's 20M scores takes seconds.
    cut = np.partition(values, count - 1)[count - 1]
    if np.isnan(cut):  # every number goes, then the first NaNs
        below, tied = ~np.isnan(values), np.flatnonzero(np.isnan(values))
    else:
        below, tied = values < cut, np.flatnonzero(values == cut)
    new[kept[below]] = 0.0
    new[kept[tied[:count - int(below.sum())]]] = 0.0
    return new.reshape(mask.shape)


def _count(fraction, remaining):
    # open_lth rounds up, so every round with fraction > 0 removes something.
    return min(int(np.ceil(fraction * remaining - 1e-9)), remaining)


def layerwise_masks(scores, masks, fractions):
    """Each layer loses `fractions[name]` of its remaining weights."""
    return {name: _remove_lowest(scores[name], masks[name], _count(fractions[name], int(masks[name].sum())))
            for name in scores}


def global_masks(scores, masks, fraction):
    """All layers share one threshold; `fraction` of all remaining weights go."""
    return _remove_lowest_global(scores, masks, _count(fraction, sum(int(m.sum()) for m in masks.values())))


def _remove_lowest_global(scores, masks, count):
    names = list(scores)
    flat_scores = np.concatenate([np.asarray(scores[n], dtype=np.float64).reshape(-1) for n in names])
    flat_mask = np.concatenate([masks[n].reshape(-1) for n in names])
    flat_new = _remove_lowest(flat_scores, flat_mask, count)
    out, start = {}, 0
    for n in names:
        size = masks[n].size
        out[n] = flat_new[start:start + size].reshape(masks[n].shape)
        start += size
    return out


def prune(model, fraction=0.0, score="magnitude", scope="layerwise", rates=None, exclude=(), threshold=None,
          **context):
    """Removes `fraction` of the remaining weights of every prunable layer, and with `threshold`
    every weight scoring below it.

    Args:
      fraction: share of the *remaining* weights to remove, in [0, 1) (after the threshold's).
      score: a registered score name (see `available_scores()`) or a callable.
      scope: "layerwise" (each layer loses its fraction) or "global" (one threshold).
      rates: {layer name or role ("conv", "dense", "output"): fraction}, layerwise only;
        a name wins over a role, a role over `fraction`.
      exclude: layer names or roles left untouched.
      threshold: weights whose score is below it are removed first (sparse variational dropout:
        score="log_alpha", threshold=-3; spike-and-slab: score="inclusion", threshold=0.5).
      **context: passed to the score (e.g. `seed=` for "random").
    Returns the new masks {layer name: array}. Nothing is changed if an argument is bad.
    """
    score_fn, layers, rates, roles = check_prune_args(model, fraction, score, scope, rates, exclude, threshold)
    masks = get_masks(model)
    scores = score_layers(score, layers, model, **context)
    current = {name: masks[name] for name in scores}
    if threshold is not None:
        current = {name: np.where(np.asarray(scores[name]) < threshold, 0.0, mask).astype(np.float32)
                   for name, mask in current.items()}
    if scope == "global":
        new = global_masks(scores, current, fraction)
    else:
        fractions = {name: rates.get(name, rates.get(roles[name], fraction)) for name in scores}
        new = layerwise_masks(scores, current, fractions)
    set_masks(model, new)
    return new


def prune_to(model, sparsity, score="magnitude", allocation="uniform", overrides=None, exclude=(), regrow=False,
             **context):
    """Prunes the model down to `sparsity` (the share of the weights of the prunable layers, those
    in `exclude` left out, that are zero), shared among layers by `allocation` ("uniform",
    "global" or "erk", see allocation.py) with `overrides` ({layer name, role, "first" or "last":
    sparsity}); within a layer, the lowest scores go. Masks only shrink: a layer already sparser
    than its share stays as it is, unless `regrow` (straight-through layers only: the masks start
    from all ones, so a pruned weight whose dense value grew back returns). `context` goes to the
    score (`data=(x, y)` for "snip"). Returns the new masks. Nothing is changed if an argument is bad."""
    _, layers, _, roles = check_prune_args(model, 0.0, score, "layerwise", None, exclude)
    if regrow and not all("straight_through" in layer.features and layer.straight_through for layer in layers):
        raise ValueError("regrow=True needs straight-through layers (tflth.pruning.straight_through(model)): "
                         "other layers hold 0 where they are pruned")
    names = [layer.name for layer in layers]
    before = get_masks(model)
    fixed = allocation_lib.resolve_overrides(names, {n: roles[n] for n in names}, overrides)
    targets = allocation_lib.allocate({layer.name: tuple(layer.kernel.shape) for layer in layers}, sparsity,
                                      allocation, fixed)
    masks = before
    if regrow:  # scored with all ones: a straight-through layer's deployed kernel is then the dense one
        masks = {name: np.ones_like(mask) for name, mask in masks.items()}
        for layer in layers:
            layer.mask.assign(masks[layer.name])
    try:
        scores = score_layers(score, layers, model, **context)
    finally:
        if regrow:  # the new masks are set below; a failing score leaves the old ones
            for layer in layers:
                layer.mask.assign(before[layer.name])
    new = {}
    for name, target in targets.items():
        kept = int(masks[name].sum())
        new[name] = _remove_lowest(scores[name], masks[name], max(kept - _keep(1.0 - target, masks[name].size), 0))
    rest = [name for name in names if name not in targets]
    if rest:  # "global": one threshold over the layers without a fixed share
        size = sum(masks[n].size for n in names)
        budget = _keep(1.0 - sparsity, size) - sum(int(new[n].sum()) for n in new)
        kept = sum(int(masks[n].sum()) for n in rest)
        new.update(_remove_lowest_global({n: scores[n] for n in rest}, {n: masks[n] for n in rest},
                                         max(kept - budget, 0)))
    set_masks(model, new)
    return new


def current_sparsity(model, exclude=()):
    """The share of zeros in the masks of the prunable layers not in `exclude` (names or roles)."""
    roles = layer_roles(model)
    masks = [layer.mask.numpy() for layer in prunable_layers(model)
             if layer.name not in exclude and roles[layer.name] not in exclude]
    return 1.0 - sum(float(m.sum()) for m in masks) / sum(m.size for m in masks)


def straight_through(model, enabled=True):
    """Turns the straight-through estimator of every masked layer on (the kernel keeps its dense
    values and receives the dense gradient; the forward pass reads kernel * mask) or off (the
    kernel is masked for good). Call it before compiling: a compiled step keeps the mode it was
    traced with. L0 and Bayesian layers have none: a ValueError names them."""
    layers = require(prunable_layers(model), "straight_through", "straight_through")
    for layer in layers:
        layer.straight_through = bool(enabled)
        apply_mask(layer)


def _keep(density, size):
    return int(round(density * size))


def check_prune_args(model, fraction, score="magnitude", scope="layerwise", rates=None, exclude=(), threshold=None):
    """Checks `prune`'s arguments against `model` (ValueError naming the bad one); returns
    (score function, layers to prune, rates, {layer name: role})."""
    _check_fraction(fraction, "fraction")
    if threshold is not None and not is_number(threshold):  # is_number: finite
        raise ValueError(f"threshold={threshold!r} must be a finite number (or None)")
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r} is unknown; allowed: {list(SCOPES)}")
    score_fn = get_score(score)
    roles = layer_roles(model)
    if not roles:
        raise ValueError("model has no prunable layers (tflth.pruning.Prunable, e.g. tflth.layers.MaskedDense)")
    allowed_keys = sorted(roles) + list(ROLES)
    rates = dict(rates or {})
    if rates and scope == "global":
        raise ValueError("rates= applies only to scope='layerwise'; use fraction= with scope='global'")
    for key, value in rates.items():
        if key not in allowed_keys:
            raise ValueError(f"rates key {key!r} is neither a prunable layer nor a role; allowed: {allowed_keys}")
        _check_fraction(value, f"rates[{key!r}]")
    for key in exclude:
        if key not in allowed_keys:
            raise ValueError(f"exclude entry {key!r} is neither a prunable layer nor a role; allowed: {allowed_keys}")
    layers = [layer for layer in prunable_layers(model)
              if layer.name not in exclude and roles[layer.name] not in exclude]
    if not layers:
        raise ValueError(f"exclude={list(exclude)} leaves no prunable layer")
    return score_fn, layers, rates, roles


def random_masks_like(masks, seed=0):
    """Random masks with exactly the per-layer counts of `masks`: the random-pruning control."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(masks):
        mask = np.asarray(masks[name], dtype=np.float32)
        flat = np.zeros(mask.size, dtype=np.float32)
        flat[rng.permutation(mask.size)[:int(mask.sum())]] = 1.0
        out[name] = flat.reshape(mask.shape)
    return out
