"""L0Dense / L0Conv2D, the l0 family, and tflth.l0: gates -> masks, architecture, compaction."""
import os

import keras
import numpy as np
import pytest

import tflth
from tflth.layers import L0Conv2D, L0Dense
from tflth.ops import hard_concrete as hc

X = np.random.default_rng(0).random((6, 28, 28, 1)).astype("float32")
OPEN, CLOSED = 20.0, -4.6  # test-time gates 1 and 0


def _set_gates(layer, value=None, closed=()):
    log_alpha = np.asarray(layer.log_alpha).copy() if value is None else np.full(layer.log_alpha.shape, value, "float32")
    log_alpha.reshape(-1)[list(closed)] = CLOSED
    layer.log_alpha.assign(log_alpha)


@pytest.mark.parametrize("cls,plain,kw,shape", [
    (L0Dense, keras.layers.Dense, dict(units=5, activation="relu"), (4, 7)),
    (L0Conv2D, keras.layers.Conv2D, dict(filters=3, kernel_size=3, padding="same", activation="relu"), (2, 6, 6, 2)),
])
@pytest.mark.parametrize("gates", ["neuron", "weight"])
def test_fully_open_gates_equal_the_plain_layer(cls, plain, kw, shape, gates):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    layer, reference = cls(gates=gates, dataset_size=100, bias_initializer="ones", **kw), plain(**kw)
    layer(x), reference(x)
    reference.set_weights([np.asarray(layer.kernel), np.asarray(layer.bias)])
    _set_gates(layer, OPEN)
    for training in (False, True):
        np.testing.assert_allclose(layer(x, training=training), reference(x), rtol=1e-5, atol=1e-6)


def test_training_is_stochastic_and_evaluation_deterministic():
    layer = L0Dense(8, gates="weight", dataset_size=10)
    x = np.ones((2, 6), "float32")
    assert np.array_equal(layer(x, training=False), layer(x, training=False))
    assert not np.array_equal(layer(x, training=True), layer(x, training=True))


def test_closed_filter_gates_silence_the_bias_too():
    layer = L0Conv2D(2, 1, gates="neuron", dataset_size=1, bias_initializer="ones")
    layer(np.zeros((1, 3, 3, 1), "float32"))
    _set_gates(layer, OPEN, closed=[0])
    out = np.asarray(layer(np.zeros((1, 3, 3, 1), "float32"), training=False))
    assert np.all(out[..., 0] == 0) and np.all(out[..., 1] == 1)


@pytest.mark.parametrize("gates,group_axes", [("neuron", (1,)), ("weight", ())])
def test_penalty_is_equation_14_over_unpruned_weights(gates, group_axes):
    layer = L0Dense(4, gates=gates, l0_lambda=0.3, dataset_size=50, l2=0.01)
    layer(np.ones((1, 5), "float32"))
    mask = (np.random.default_rng(2).random((5, 4)) < 0.6).astype("float32")
    tflth.pruning.set_masks(keras.Sequential([keras.Input((5,)), layer]), {layer.name: mask})
    p = 1 / (1 + np.exp(-(np.asarray(layer.log_alpha) - (2 / 3) * np.log(0.1 / 1.1))))
    kernel = np.asarray(layer.kernel)
    group = (lambda a: a.sum(axis=group_axes, keepdims=True)) if group_axes else (lambda a: a)
    expected = 0.3 / 50 * (p * group(mask)).sum() + 0.5 * 0.01 * (p * group(kernel ** 2)).sum()
    np.testing.assert_allclose(float(layer.penalty()), expected, rtol=1e-5)


def test_penalty_reaches_model_losses_and_trains_with_xla():
    model = tflth.models.lenet_300_100(family="l0", gates="neuron", l0_lambda=0.1, dataset_size=55_000)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    before = np.asarray(model.get_layer("fc1").log_alpha).copy()
    model.fit(X, np.arange(6) % 10, epochs=2, verbose=0)
    model(X, training=True)  # model.losses holds the last call's penalties
    assert len(model.losses) == 3 and all(float(v) > 0 for v in model.losses)
    assert not np.array_equal(before, np.asarray(model.get_layer("fc1").log_alpha))  # the gates learn
    assert np.asarray(model.get_layer("fc1").log_alpha).max() <= 4.61  # clamped like the reference


@pytest.mark.parametrize("name", ["lenet_300_100", "lenet5", "conv2", "resnet20"])
def test_every_model_builds_from_the_l0_family(name):
    shape = (28, 28, 1) if name in ("lenet_300_100", "lenet5") else (32, 32, 3)
    model = tflth.models.get_model(name, family="l0", input_shape=shape, dataset_size=1000)
    layers = tflth.pruning.prunable_layers(model)
    assert layers and all(isinstance(layer, (L0Dense, L0Conv2D)) for layer in layers)


def test_prune_and_sparsity_treat_l0_layers_as_masked():
    model = tflth.models.lenet_300_100(family="l0", dataset_size=100)
    tflth.pruning.prune(model, 0.5)
    assert abs(tflth.pruning.sparsity(model)["fc1"] - 0.5) < 1e-3
    assert np.all(np.asarray(model.get_layer("fc1").kernel)[np.asarray(model.get_layer("fc1").mask) == 0] == 0)


def test_save_and_load_keep_gates_and_outputs(tmp_path):
    model = tflth.models.lenet5(family="l0", gates="weight", l0_lambda=0.2, dataset_size=100, seed=3)
    for layer in tflth.l0.gate_layers(model):
        _set_gates(layer, closed=range(0, int(np.prod(layer.log_alpha.shape)), 3))
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # registered: no custom objects needed
    np.testing.assert_array_equal(loaded(X, training=False), model(X, training=False))
    conv = loaded.get_layer("conv1")
    assert (conv.gates, conv.l0_lambda, conv.seed) == ("weight", 0.2, 3)
    np.testing.assert_array_equal(np.asarray(conv.log_alpha), np.asarray(model.get_layer("conv1").log_alpha))


@pytest.mark.parametrize("kw,name", [
    (dict(l0_lambda=-0.1), "l0_lambda"), (dict(beta=1.5), "beta"), (dict(gamma=0.1), "gamma"), (dict(zeta=0.9), "zeta"),
    (dict(gates="channel"), "gates"), (dict(l2=-1.0), "l2"), (dict(droprate_init=1.0), "droprate_init"),
    (dict(dataset_size=0), "dataset_size"), (dict(dataset_size=None), "dataset_size"),
    (dict(targeted_dropout=0.5), "targeted_dropout"),
])
@pytest.mark.parametrize("cls,args", [(L0Dense, (4,)), (L0Conv2D, (4, 3))])
def test_bad_arguments_name_themselves(cls, args, kw, name):
    with pytest.raises(ValueError, match=f"^{name}=") as error:
        cls(*args, **{"dataset_size": 10, **kw})
    assert "\n" not in str(error.value)


def _close_some(model, fraction, seed=0):
    rng = np.random.default_rng(seed)
    for layer in tflth.l0.gate_layers(model):
        n = int(np.prod(layer.log_alpha.shape))
        _set_gates(layer, OPEN, closed=np.flatnonzero(rng.random(n) < fraction))


def test_masks_from_gates_clear_closed_weights_and_keep_outputs():
    model = tflth.models.lenet5(family="l0", gates="weight", dataset_size=100)
    _close_some(model, 0.7)
    before = np.asarray(model(X, training=False))
    masks = tflth.l0.masks_from_gates(model)
    for layer in tflth.l0.gate_layers(model):
        closed = np.asarray(hc.deterministic(layer.log_alpha)) == 0
        np.testing.assert_array_equal(masks[layer.name] == 0, closed)
    assert abs(tflth.pruning.sparsity(model)["total"] - 0.7) < 0.01
    np.testing.assert_allclose(model(X, training=False), before, atol=1e-5)


def test_architecture_counts_removed_neurons():
    model = tflth.models.lenet_300_100(family="l0", gates="neuron", dataset_size=100)
    _set_gates(model.get_layer("fc1"), OPEN, closed=range(100))       # 100 of 784 pixels
    _set_gates(model.get_layer("fc2"), OPEN, closed=range(0, 300, 6))  # 50 of fc1's 300 units
    _set_gates(model.get_layer("output"), OPEN, closed=range(10))      # 10 of fc2's 100 units
    arch = tflth.l0.architecture(model)
    assert (arch.neurons, arch.original) == ("684-250-90", "784-300-100")
    kept = 684 * 250 + 250 * 90 + 90 * 10
    assert abs(arch.weights_kept - 100 * kept / 266_200) < 1e-9 and arch.flops == 2 * kept
    assert "684-250-90" in str(arch)


def test_architecture_of_a_model_that_is_not_a_chain_counts_weights_alone():
    """ResNet-20 (residual additions, BatchNorm) cannot lose units; its report counts the
    non-zero weights and FLOPs of every prunable layer (a sparse run's metrics need it)."""
    model = tflth.models.resnet20(family="masked", input_shape=(8, 8, 3))
    layers = tflth.pruning.prunable_layers(model)
    masks = {layer.name: np.asarray(layer.mask) for layer in layers}
    masks[layers[1].name][..., :4] = 0  # the first 4 filters of the second convolution
    tflth.pruning.set_masks(model, masks)
    arch = tflth.l0.architecture(model)
    assert [r.name for r in arch.layers] == [layer.name for layer in layers]
    second = arch.layers[1]
    assert (second.units, second.inputs) == (second.units_total, second.inputs_total)  # nothing removed
    assert second.weights == second.weights_total - 4 * second.weights_total // second.units_total
    assert second.flops == 2 * second.weights * 8 * 8  # stride 1 on 8 x 8 images
    total = sum(int(np.prod(layer.kernel.shape)) for layer in layers)
    assert arch.weights_kept == pytest.approx(100 * (total - (second.weights_total - second.weights)) / total)


@pytest.mark.parametrize("name,gates", [("lenet_300_100", "neuron"), ("lenet5", "neuron"), ("lenet5", "weight")])
def test_compact_model_is_plain_smaller_and_computes_the_same(name, gates, tmp_path):
    model = tflth.models.get_model(name, family="l0", gates=gates, dataset_size=100)
    _close_some(model, 0.5, seed=1)
    small = tflth.l0.compact(model)
    np.testing.assert_allclose(small(X), model(X, training=False), rtol=1e-4, atol=1e-5)
    assert small.count_params() < sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert {type(layer).__module__.split(".")[0] for layer in small.layers} == {"keras"}
    path = os.path.join(tmp_path, "small.keras")
    small.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(X), small(X), rtol=1e-6)


def test_compact_refuses_what_it_cannot_compact():
    with pytest.raises(ValueError, match="BatchNormalization"):
        tflth.l0.compact(tflth.models.resnet20(family="l0", dataset_size=10))
    with pytest.raises(ValueError, match="no L0 layers"):
        tflth.l0.compact(tflth.models.lenet_300_100())


def test_one_seed_for_the_model_still_gives_each_layer_its_own_noise():
    model = tflth.models.lenet_300_100(family="l0", gates="neuron", dataset_size=10, seed=7)
    states = [np.asarray(layer.seed_generator.state).tolist() for layer in tflth.l0.gate_layers(model)]
    assert len({str(s) for s in states}) == 3


@pytest.mark.parametrize("use_bias,units", [(True, 5), (False, 6)])
def test_compact_folds_units_an_activation_makes_constant(use_bias, units):
    inputs = keras.Input((4,))
    x = tflth.layers.MaskedDense(6, name="a")(inputs)
    x = keras.layers.Activation("sigmoid")(x)  # sigmoid(0) = 0.5: a silent unit still speaks
    model = keras.Model(inputs, tflth.layers.MaskedDense(3, name="b", use_bias=use_bias)(x))
    a = model.get_layer("a")
    mask = np.ones((4, 6), "float32")
    mask[:, 2] = 0
    tflth.pruning.set_masks(model, {"a": mask})
    a.bias.assign(np.zeros(6, "float32"))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    small = tflth.pruning.compact.compact(model)
    np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-6)
    assert small.get_layer("a").units == units  # folded into b's bias; kept where b has none
