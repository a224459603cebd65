import keras
import numpy as np
import pytest

from tflth import pruning
from tflth.layers import MaskedConv2D, MaskedDense


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = MaskedConv2D(4, 3, name="conv")(inputs)          # 36 weights
    x = keras.layers.Flatten()(x)
    x = MaskedDense(10, activation="relu", name="fc")(x)   # 640 weights
    outputs = MaskedDense(5, name="output")(x)             # 50 weights
    return keras.Model(inputs, outputs, name="tiny")


def _kept(model):
    return {name: int(mask.sum()) for name, mask in pruning.get_masks(model).items()}


def test_roles():
    assert pruning.layer_roles(_model()) == {"conv": "conv", "fc": "dense", "output": "output"}


def test_layerwise_counts_follow_rates_and_compound():
    model = _model()
    rates = {"conv": 0.15, "dense": 0.2, "output": 0.1}
    pruning.prune(model, 0.2, rates=rates)
    assert _kept(model) == {"conv": 36 - 6, "fc": 640 - 128, "output": 50 - 5}  # ceil(0.15*36)=6
    pruning.prune(model, 0.2, rates=rates)  # a fraction of what *remains*
    assert _kept(model) == {"conv": 30 - 5, "fc": 512 - 103, "output": 45 - 5}


def test_layer_name_beats_role_beats_fraction():
    model = _model()
    pruning.prune(model, 0.5, rates={"dense": 0.25, "fc": 0.1})
    assert _kept(model) == {"conv": 18, "fc": 576, "output": 25}


def test_magnitude_removes_the_smallest_weights():
    model = _model()
    kernel = model.get_layer("fc").kernel.numpy()
    pruning.prune(model, 0.3, exclude=["conv", "output"])
    mask = pruning.get_masks(model)["fc"]
    assert np.abs(kernel[mask == 0]).max() <= np.abs(kernel[mask == 1]).min()
    assert _kept(model)["conv"] == 36 and _kept(model)["output"] == 50


@pytest.mark.parametrize("count", [0, 1, 7, 40, "all", "more"])
def test_removal_picks_what_a_stable_sort_would(count):
    from tflth.pruning.pruner import _remove_lowest
    rng = np.random.default_rng(len(str(count)))
    score = rng.integers(0, 5, 80).astype(np.float64)  # many ties
    score[rng.choice(80, 6, replace=False)] = np.nan
    mask = (rng.random(80) < 0.75).astype(np.float32)
    kept = np.flatnonzero(mask)
    count = {"all": len(kept), "more": len(kept) + 3}.get(count, count)
    want = mask.copy()
    want[kept[np.argsort(score[kept], kind="stable")[:count]]] = 0.0
    np.testing.assert_array_equal(_remove_lowest(score, mask, count), want)


def test_global_uses_one_threshold():
    model = _model()
    pruning.prune(model, 0.5, scope="global")
    assert sum(_kept(model).values()) == 726 - 363
    weights = np.concatenate([layer.kernel.numpy().ravel() for layer in pruning.prunable_layers(model)])
    masks = np.concatenate([m.ravel() for m in pruning.get_masks(model).values()])
    assert np.all(weights[masks == 0] == 0)
    model2 = _model()
    before = np.concatenate([layer.kernel.numpy().ravel() for layer in pruning.prunable_layers(model2)])
    assert np.abs(before[masks == 0]).max() <= np.abs(before[masks == 1]).min()


@pytest.mark.parametrize("scope", pruning.SCOPES)
@pytest.mark.parametrize("score", ["magnitude", "random"])
def test_masks_only_shrink(scope, score):
    model = _model()
    previous = pruning.get_masks(model)
    for _ in range(4):
        pruning.prune(model, 0.3, score=score, scope=scope, seed=3)
        current = pruning.get_masks(model)
        for name in current:
            assert np.all(current[name] <= previous[name])
        previous = current


def test_random_score_is_seeded():
    a, b, c = _model(), _model(), _model()
    pruning.prune(a, 0.5, score="random", seed=1)
    pruning.prune(b, 0.5, score="random", seed=1)
    pruning.prune(c, 0.5, score="random", seed=2)
    ma, mb, mc = (pruning.get_masks(m) for m in (a, b, c))
    assert all(np.array_equal(ma[n], mb[n]) for n in ma)
    assert not all(np.array_equal(ma[n], mc[n]) for n in ma)


def test_custom_score_plugs_in():
    model = _model()
    pruning.prune(model, 0.5, score=lambda layer, **_: -np.abs(layer.kernel.numpy()), exclude=["dense", "output"])
    mask = pruning.get_masks(model)["conv"]
    kernel = _model().get_layer("conv").kernel.numpy()
    assert np.abs(kernel[mask == 1]).max() <= np.abs(kernel[mask == 0]).min()  # the largest went


def test_random_masks_like_keeps_per_layer_counts():
    model = _model()
    pruning.prune(model, 0.6)
    masks = pruning.get_masks(model)
    shuffled = pruning.random_masks_like(masks, seed=0)
    assert {n: int(m.sum()) for n, m in shuffled.items()} == {n: int(m.sum()) for n, m in masks.items()}
    assert not np.array_equal(shuffled["fc"], masks["fc"])


@pytest.mark.parametrize("kwargs,message", [
    (dict(fraction=1.0), "fraction"),
    (dict(fraction=-0.1), "fraction"),
    (dict(fraction=0.2, score="nope"), "score"),
    (dict(fraction=0.2, scope="per-layer"), "scope"),
    (dict(fraction=0.2, rates={"fc2": 0.1}), "rates"),
    (dict(fraction=0.2, rates={"dense": 1.5}), "rates"),
    (dict(fraction=0.2, rates={"dense": 0.1}, scope="global"), "rates"),
    (dict(fraction=0.2, exclude=["nope"]), "exclude"),
    (dict(fraction=0.2, exclude=["conv", "dense", "output"]), "exclude"),
])
def test_bad_arguments_change_nothing(kwargs, message):
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        pruning.prune(model, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_numpy_scalar_fraction_prunes_like_a_float():
    # keras-tuner and NumPy grids hand over np.float32, not float
    want = pruning.prune(_model(), fraction=0.5)
    got = pruning.prune(_model(), fraction=np.float32(0.5))
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_model_without_prunable_layers():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no prunable layers"):
        pruning.prune(model, 0.2)


def test_set_masks_checks_everything_before_writing():
    model = _model()
    good = {n: np.zeros_like(m) for n, m in pruning.get_masks(model).items()}
    with pytest.raises(ValueError, match="shape"):
        pruning.set_masks(model, {**good, "output": np.ones((3, 3))})
    assert sum(_kept(model).values()) == 726
    with pytest.raises(ValueError, match="not prunable"):
        pruning.set_masks(model, {"nope": np.ones(3)})
    with pytest.raises(ValueError, match="only 0 and 1"):
        pruning.set_masks(model, {"fc": np.full((64, 10), 0.5)})


def test_sparsity():
    model = _model()
    pruning.prune(model, 0.5, rates={"conv": 0.0})
    s = pruning.sparsity(model)
    assert s["conv"] == 0.0 and s["fc"] == 0.5 and s["output"] == 0.5
    assert s["total"] == pytest.approx((320 + 25) / 726)
