"""Structured pruning: whole units by norm (then compaction) and N:M patterns."""
import keras
import numpy as np
import pytest

from tflth import pruning
from tflth.layers import MaskedConv2D, MaskedDense
from tflth.pruning import compact, structured


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 4))
    x = MaskedConv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
    x = MaskedDense(16, activation="relu", name="fc")(x)
    return keras.Model(inputs, MaskedDense(4, name="output")(x))


@pytest.mark.parametrize("norm", [1, 2])
def test_prune_units_removes_the_filters_and_neurons_of_smallest_norm(norm):
    model = _model()
    kernels = {n: model.get_layer(n).kernel.numpy() for n in ("conv", "fc")}
    structured.prune_units(model, 0.5, norm=norm)
    masks = pruning.get_masks(model)
    for name, kernel in kernels.items():
        columns = kernel.reshape(-1, kernel.shape[-1])
        norms = np.linalg.norm(columns, ord=norm, axis=0)
        kept = masks[name].reshape(-1, kernel.shape[-1]).all(axis=0)
        assert kept.sum() == kernel.shape[-1] // 2
        assert not masks[name].reshape(-1, kernel.shape[-1])[:, ~kept].any()  # whole units go
        assert norms[~kept].max() <= norms[kept].min()
    assert masks["output"].all()  # the classes stay


def test_prune_units_on_the_input_side_and_compaction_give_a_smaller_equal_model():
    model = _model()
    structured.prune_units(model, 0.5, side="input", exclude=["conv"])  # fc's inputs and output's inputs
    masks = pruning.get_masks(model)
    assert masks["output"].any(axis=1).sum() == 8  # 8 of output's 16 input neurons left
    small = compact.compact(model)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert small.get_layer("fc").kernel.shape[-1] == 8  # fc's units that output no longer reads


def _biased(model, value=0.1):
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:  # as after training: no bias is zero
            layer.bias.assign(np.full(layer.bias.shape, value, "float32"))
    return model


@pytest.mark.parametrize("value", [0.1, -0.1])
def test_output_units_pruned_with_biases_still_compact_away(value):
    model = _biased(_model(), value)
    structured.prune_units(model, 0.5)  # conv's filters (relu(b) after pooling and Flatten) and fc's neurons
    small = compact.compact(model)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert small.get_layer("conv").kernel.shape[-1] == 4 and small.get_layer("fc").kernel.shape[-1] == 8


@pytest.mark.parametrize("padding,filters", [("valid", 3), ("same", 4)])
def test_a_constant_filter_folds_into_a_convolution_only_without_padding(padding, filters):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    x = MaskedConv2D(4, 3, name="a")(inputs)
    model = keras.Model(inputs, MaskedConv2D(2, 3, padding=padding, name="b")(x))
    _biased(model)
    mask = np.ones((3, 3, 2, 4), "float32")
    mask[..., 1] = 0
    pruning.set_masks(model, {"a": mask})
    small = compact.compact(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert small.get_layer("a").kernel.shape[-1] == filters


def test_a_layer_with_every_unit_pruned_keeps_one_and_the_outputs():
    model = _biased(_model())
    pruning.set_masks(model, {"fc": np.zeros(model.get_layer("fc").mask.shape, "float32")})
    small = compact.compact(model)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert small.get_layer("fc").kernel.shape[-1] == 1 and small.get_layer("conv").kernel.shape[-1] == 1


def test_compact_takes_sequential_models():
    model = keras.Sequential([keras.Input((6,)), MaskedDense(5, name="fc"), MaskedDense(2, name="out")])
    structured.prune_units(model, 0.4, exclude=["out"])
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    small = compact.compact(model)
    np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-6)
    assert small.get_layer("fc").kernel.shape == (6, 3)


def test_prune_units_compounds_on_the_units_left():
    model = _model()
    structured.prune_units(model, 0.5)
    structured.prune_units(model, 0.5)
    assert pruning.get_masks(model)["conv"].reshape(-1, 8).any(axis=0).sum() == 2


def test_nm_pattern_keeps_n_of_every_m_inputs():
    model = _model()
    kernel = model.get_layer("fc").kernel.numpy()
    structured.prune_nm(model, 2, 4, exclude=["output"])
    masks = pruning.get_masks(model)
    fc = masks["fc"].reshape(-1, 4, 16)  # groups of 4 consecutive inputs of each output
    assert np.all(fc.sum(axis=1) == 2)
    groups = np.abs(kernel).reshape(-1, 4, 16)
    assert np.all(np.where(fc == 0, groups, -1).max(axis=1) <= np.where(fc == 1, groups, np.inf).min(axis=1))
    conv = masks["conv"]  # (3, 3, 4, 8): 2 of the 4 input channels at each position of each filter
    assert np.all(conv.sum(axis=2) == 2)
    assert pruning.sparsity(model)["conv"] == 0.5 and masks["output"].all()


def test_nm_counts_weights_already_pruned_among_the_dropped():
    model = _model()
    before = pruning.prune(model, 0.9, exclude=["conv", "output"])["fc"]
    structured.prune_nm(model, 2, 4, exclude=["conv", "output"])
    after = pruning.get_masks(model)["fc"]
    assert np.all(after <= before) and np.all(after.reshape(-1, 4, 16).sum(axis=1) <= 2)
    groups = before.reshape(-1, 4, 16).sum(axis=1)
    assert after.sum() == np.minimum(groups, 2).sum()  # only groups with more than 2 left lose weights


@pytest.mark.parametrize("kw,match", [
    (dict(n=4, m=4), r"n=4 must be < m=4"),
    (dict(n=0, m=4), r"n=0 must be an integer >= 1"),
    (dict(n=2, m=3), r"layer 'conv' has 4 inputs \(kernel axis -2\), not a multiple of m=3; exclude it"),
])
def test_bad_nm_arguments(kw, match):
    model = _model()
    with pytest.raises(ValueError, match=match):
        structured.prune_nm(model, **kw)
    assert all(m.all() for m in pruning.get_masks(model).values())


@pytest.mark.parametrize("kw,match", [
    (dict(fraction=1.0), r"fraction=1.0 must be a number in \[0, 1\)"),
    (dict(fraction=0.5, side="both"), r"side='both' is unknown"),
    (dict(fraction=0.5, norm=3), r"norm=3 must be 1 \(L1\) or 2 \(L2\)"),
])
def test_bad_unit_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        structured.prune_units(_model(), **kw)


def test_units_rank_by_their_norm_also_when_already_sparse():
    """A unit with one weight of 0.9 has a smaller L1 norm (0.9) than one with four of 0.5 (2.0)."""
    score = np.zeros((4, 2))
    score[0, 0] = 0.9
    score[:, 1] = 0.5
    mask = np.zeros((4, 2), np.float32)
    mask[0, 0] = 1.0
    mask[:, 1] = 1.0
    l1 = structured.unit_scores(score, mask, "output", 1)
    np.testing.assert_allclose(l1, [0.9 / 4, 2.0 / 4])


def test_group_side_prunes_l0_gates_where_they_sit_filters_and_input_neurons():
    from tflth import models
    keras.utils.set_random_seed(0)
    model = models.lenet5(family="l0", gates="neuron", dataset_size=100)
    for layer in pruning.prunable_layers(model):  # distinct gates: the lowest are known
        layer.log_alpha.assign(np.random.default_rng(1).normal(size=layer.log_alpha.shape).astype("float32"))
    before = {layer.name: np.asarray(layer.log_alpha).reshape(-1) for layer in pruning.prunable_layers(model)}
    masks = structured.prune_units(model, 0.5, score="inclusion", side="group")
    assert structured.group_side(masks["conv1"]) == "output"
    for name in ("conv1", "conv2"):  # filters: the half with the lowest gates gone
        kept = masks[name].reshape(-1, masks[name].shape[-1]).any(axis=0)
        assert kept.sum() == kept.size // 2 and before[name][~kept].max() < before[name][kept].min()
    for name in ("fc1", "output"):  # input neurons (output's inputs are fc1's units; the classes stay)
        kept = masks[name].any(axis=1)
        assert kept.sum() == kept.size // 2 and before[name][~kept].max() < before[name][kept].min()
        assert masks[name].any(axis=0).all()


def test_group_side_prunes_horseshoe_input_neurons():
    from tflth import models
    keras.utils.set_random_seed(0)
    model = models.lenet_300_100(family="local_reparam", prior="horseshoe", dataset_size=100)
    for layer in pruning.prunable_layers(model):  # as after training: the groups' scales differ in certainty
        rho = layer.prior_variables["group_rho"]
        rho.assign(np.random.default_rng(2).normal(size=rho.shape).astype("float32"))
    masks = structured.prune_units(model, 0.25, score="horseshoe_scale", side="group")
    kept = masks["fc2"].any(axis=1)
    assert kept.sum() == 225 and masks["fc2"][kept].all()  # whole rows: 75 of fc1's 300 units gone
