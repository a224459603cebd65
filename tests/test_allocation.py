"""Sharing a target sparsity among layers (uniform, global, ERK, overrides) and `prune_to`."""
import keras
import numpy as np
import pytest

from tflth import pruning
from tflth.layers import MaskedConv2D, MaskedDense
from tflth.pruning import allocation

SHAPES = {"conv": (3, 3, 1, 8), "fc": (200, 50), "output": (50, 10)}
SIZES = {n: int(np.prod(s)) for n, s in SHAPES.items()}


def _kept(targets):
    return sum((1 - targets[n]) * SIZES[n] for n in SHAPES)


@pytest.mark.parametrize("kind", ["uniform", "erk"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_allocations_reach_the_target(kind, sparsity):
    targets = allocation.allocate(SHAPES, sparsity, kind)
    assert _kept(targets) == pytest.approx((1 - sparsity) * sum(SIZES.values()))
    assert all(0 <= t < 1 or t == 0 for t in targets.values())
    if kind == "uniform":
        assert set(np.round(list(targets.values()), 9)) == {round(sparsity, 9)}


def test_erk_densities_follow_the_erdos_renyi_kernel_ratio():
    targets = allocation.allocate(SHAPES, 0.9, "erk")
    density = {n: 1 - t for n, t in targets.items()}
    raw = {n: sum(s) / np.prod(s) for n, s in SHAPES.items()}
    free = [n for n in SHAPES if density[n] < 1]
    ratios = {n: density[n] / raw[n] for n in free}
    assert len(free) >= 2 and np.ptp(list(ratios.values())) < 1e-9  # one epsilon for every layer not capped
    assert density["conv"] > density["output"] > density["fc"]


def test_erk_keeps_a_layer_dense_rather_than_above_density_one():
    targets = allocation.allocate(SHAPES, 0.5, "erk")
    assert targets["conv"] == 0.0  # 72 weights; its Erdos-Renyi density would pass 1
    assert _kept(targets) == pytest.approx(0.5 * sum(SIZES.values()))


def test_overrides_fix_layers_and_the_rest_makes_up_the_total():
    names, roles = list(SHAPES), {"conv": "conv", "fc": "dense", "output": "output"}
    fixed = allocation.resolve_overrides(names, roles, {"first": 0.0, "output": 0.5})
    assert fixed == {"conv": 0.0, "output": 0.5}
    targets = allocation.allocate(SHAPES, 0.9, "uniform", fixed)
    assert targets["conv"] == 0.0 and targets["output"] == 0.5
    assert _kept(targets) == pytest.approx(0.1 * sum(SIZES.values()))
    assert allocation.resolve_overrides(names, roles, {"output": 0.5, "last": 0.2}) == {"output": 0.5}  # name wins


@pytest.mark.parametrize("kw,match", [
    (dict(sparsity=0.999, allocation="uniform", fixed={"fc": 0.0}), r"allocation='uniform' cannot reach"),
    (dict(sparsity=0.1, allocation="erk", fixed={"fc": 0.99}), r"allocation='erk' cannot reach"),
    (dict(sparsity=0.5, allocation="even"), r"allocation='even' is unknown; allowed"),
    (dict(sparsity=1.0), r"sparsity=1.0 must be a number in \[0, 1\)"),
])
def test_bad_allocations_are_one_line_errors(kw, match):
    with pytest.raises(ValueError, match=match) as info:
        allocation.allocate(SHAPES, **kw)
    assert "\n" not in str(info.value)


def test_bad_override_key():
    with pytest.raises(ValueError, match=r"overrides key 'fc9' is neither"):
        allocation.resolve_overrides(["fc"], {"fc": "dense"}, {"fc9": 0.0})


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = MaskedConv2D(8, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(x))
    x = MaskedDense(50, activation="relu", name="fc")(keras.layers.Dense(200, name="plain")(x))
    return keras.Model(inputs, MaskedDense(10, name="output")(x))


def _counts(model):
    return {n: int(m.sum()) for n, m in pruning.get_masks(model).items()}


@pytest.mark.parametrize("kind", ["uniform", "global", "erk"])
def test_prune_to_reaches_the_target_and_masks_only_shrink(kind):
    model = _model()
    pruning.prune_to(model, 0.8, allocation=kind)
    first = pruning.get_masks(model)
    assert sum(_counts(model).values()) == round(0.2 * sum(SIZES.values()))
    pruning.prune_to(model, 0.9, allocation=kind)
    assert sum(_counts(model).values()) == round(0.1 * sum(SIZES.values()))
    assert all(np.all(pruning.get_masks(model)[n] <= first[n]) for n in first)
    if kind != "global":
        expected = allocation.allocate(SHAPES, 0.9, kind)
        assert _counts(model) == {n: round((1 - expected[n]) * SIZES[n]) for n in SHAPES}
    pruning.prune_to(model, 0.5, allocation=kind)  # less sparse than now: nothing grows back
    assert sum(_counts(model).values()) == round(0.1 * sum(SIZES.values()))


def test_prune_to_global_keeps_the_largest_weights_of_all_layers_with_an_override():
    model = _model()
    before = {layer.name: np.abs(layer.kernel.numpy()) for layer in pruning.prunable_layers(model)}
    pruning.prune_to(model, 0.9, allocation="global", overrides={"first": 0.0})
    masks = pruning.get_masks(model)
    assert masks["conv"].all()
    kept = np.concatenate([before[n][masks[n] == 1] for n in ("fc", "output")])
    dropped = np.concatenate([before[n][masks[n] == 0] for n in ("fc", "output")])
    assert dropped.max() <= kept.min()
    assert sum(_counts(model).values()) == round(0.1 * sum(SIZES.values()))
