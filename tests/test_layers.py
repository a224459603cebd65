import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tflth.layers import MaskedConv2D, MaskedDense, get_family
from tflth.pruning import prunable_layers, set_masks


def _model():
    return keras.Sequential([
        keras.Input((8, 8, 2)),
        MaskedConv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        MaskedDense(6, activation="relu", name="hidden"),
        MaskedDense(3, name="out"),
    ])


def _half_masks(model, seed=0):
    rng = np.random.default_rng(seed)
    return {layer.name: (rng.random(layer.mask.shape) < 0.5).astype("float32")
            for layer in model.layers if hasattr(layer, "mask")}


def _data(n=32):
    rng = np.random.default_rng(1)
    return rng.random((n, 8, 8, 2)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("cls,kwargs", [
    (MaskedDense, dict(units=7, activation="relu", use_bias=False, kernel_initializer="he_normal",
                       kernel_regularizer=keras.regularizers.L2(1e-4), name="d")),
    (MaskedConv2D, dict(filters=5, kernel_size=(3, 2), strides=2, padding="same", dilation_rate=1,
                        activation="tanh", kernel_constraint=keras.constraints.MaxNorm(2.0), name="c")),
])
def test_config_round_trip(cls, kwargs):
    layer = cls(**kwargs)
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config
    plain = (keras.layers.Dense if cls is MaskedDense else keras.layers.Conv2D)(**kwargs)
    # drop-in: Keras' arguments, nothing dropped, plus targeted dropout's and the straight-through option
    own = {"targeted_dropout", "targeted_fraction", "targeted_unit", "straight_through"}
    assert {k: v for k, v in config.items() if k not in own} == plain.get_config()
    assert own <= set(config)


def test_mask_is_a_non_trainable_weight():
    layer = MaskedDense(4)
    assert getattr(layer, "mask", None) is None  # unbuilt: no mask yet, as before
    layer.build((None, 3))
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
    assert [w.name for w in layer.non_trainable_weights] == ["mask"]
    assert [w.name for w in layer.weights] == ["kernel", "bias", "mask"]  # callers snapshot by position
    assert layer.weights[2] is layer.mask and layer.mask.dtype == "float32"
    np.testing.assert_array_equal(layer.mask.numpy(), np.ones((3, 4)))


def test_default_names_and_variable_paths():
    assert MaskedDense(2).name.startswith("masked_dense")
    assert MaskedConv2D(2, 3).name.startswith("masked_conv2d")
    model = _model()
    paths = [v.path for v in model.weights]
    assert len(set(paths)) == len(paths)


def test_clone_model_keeps_masks_working():
    model = _model()
    clone = keras.models.clone_model(model)
    assert [layer.name for layer in prunable_layers(clone)] == ["conv", "hidden", "out"]
    assert [v.name for v in clone.weights] == [v.name for v in model.weights]
    masks = _half_masks(clone)
    set_masks(clone, masks)
    assert np.all(clone.get_layer("conv").kernel.numpy()[masks["conv"] == 0] == 0.0)


def test_all_ones_mask_equals_plain_layers():
    x, _ = _data(4)
    model = _model()
    plain = keras.Sequential([
        keras.Input((8, 8, 2)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(),
        keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)])
    for src, dst in zip([model.layers[0], model.layers[2], model.layers[3]],
                        [plain.layers[0], plain.layers[2], plain.layers[3]]):
        dst.set_weights([src.kernel.numpy(), src.bias.numpy()])
    np.testing.assert_allclose(model(x), plain(x), rtol=1e-6, atol=1e-6)


def test_set_weights_cannot_revive_pruned_weights():
    model = _model()
    x, _ = _data(4)
    masks = _half_masks(model)
    set_masks(model, masks)
    before = model(x).numpy()
    for layer in model.layers:
        if hasattr(layer, "mask"):  # put garbage where the mask is 0
            kernel, bias, mask = layer.get_weights()
            layer.set_weights([kernel + (1 - mask) * 1e3, bias, mask])
            assert np.all(layer.kernel.numpy()[mask == 0] == 0.0)
    np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-6)


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    lambda: keras.optimizers.Adam(0.05),
    lambda: keras.optimizers.AdamW(0.05, weight_decay=0.1),
])
def test_pruned_weights_stay_exactly_zero_after_training(optimizer):
    model = _model()
    model.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # optimizer state (momentum, moments) built up
    masks = _half_masks(model)
    set_masks(model, masks)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    for layer in model.layers:
        if hasattr(layer, "mask"):
            kernel = layer.kernel.numpy()
            assert np.all(kernel[masks[layer.name] == 0] == 0.0)
            assert np.count_nonzero(kernel[masks[layer.name] == 1]) == masks[layer.name].sum()


def test_keras_file_round_trip_without_custom_objects(tmp_path):
    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    set_masks(model, _half_masks(model))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert [v.name for v in model.weights] == [v.name for v in loaded.weights]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_keras_file_needs_tflth_imported_and_nothing_else(tmp_path):
    """Keras finds a registered class only once its module has run: without `import tflth` it
    fails naming the borrowed class name (see tflth.internals.filed_as), the config it prints naming ours."""
    model = _model()
    set_masks(model, _half_masks(model))
    model.save(tmp_path / "m.keras")
    script = (
        "import sys, keras\n"
        "try:\n"
        "    keras.models.load_model(sys.argv[1])\n"
        "except Exception as e:\n"
        "    print('without:', 'tflth' in sys.modules, type(e).__name__, str(e).replace(chr(10), ' '))\n"
        "import tflth\n"
        "loaded = keras.models.load_model(sys.argv[1])\n"
        "print('with:', *[type(layer).__qualname__ for layer in loaded.layers])\n"
        "print('kept:', int(sum(layer.mask.numpy().sum() for layer in loaded.layers if hasattr(layer, 'mask'))))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.keras")], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    without, with_, kept = done.stdout.strip().splitlines()[-3:]
    assert without.startswith("without: False TypeError")
    assert "Could not locate class 'Conv2D'" in without and "'registered_name': 'tflth>MaskedConv2D'" in without
    assert with_ == "with: MaskedConv2D Flatten MaskedDense MaskedDense"
    assert kept == f"kept: {int(sum(m.sum() for m in _half_masks(model).values()))}"


def test_saved_weights_hold_true_zeros(tmp_path):
    model = _model()
    masks = _half_masks(model)
    set_masks(model, masks)
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = _model()
    fresh.load_weights(tmp_path / "w.weights.h5")
    for layer in fresh.layers:
        if hasattr(layer, "mask"):
            np.testing.assert_array_equal(layer.mask.numpy(), masks[layer.name])
            assert np.all(layer._kernel.numpy()[masks[layer.name] == 0] == 0.0)
            np.testing.assert_array_equal(layer._kernel.numpy(), model.get_layer(layer.name)._kernel.numpy())


# Weight files are interchangeable between plain Keras layers and masked ones.

def _family_model(family, kind):
    """Two layers of one kind, so that Keras' per-class file numbering is exercised too."""
    family = get_family(family)
    if kind == "dense":
        return keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Flatten(),
                                 family.dense(6, activation="relu", name="a"), family.dense(3, name="b")])
    return keras.Sequential([keras.Input((8, 8, 2)), family.conv2d(4, 3, activation="relu", name="a"),
                             family.conv2d(3, 3, name="b")])


def _save(model, folder, fmt):
    """The file a user would write in format `fmt`; `load_weights` reads both."""
    path = str(folder / ("w.weights.h5" if fmt == "weights.h5" else "m.keras"))
    (model.save_weights if fmt == "weights.h5" else model.save)(path)
    return path


def _layers_with_kernels(model):
    return [layer for layer in model.layers if hasattr(layer, "kernel")]


@pytest.mark.parametrize("fmt", ["weights.h5", "keras"])
@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_plain_weights_load_into_masked_model(tmp_path, kind, fmt):
    plain = _family_model("plain", kind)
    path = _save(plain, tmp_path, fmt)
    masked = _family_model("masked", kind)
    masked.load_weights(path)
    for p, m in zip(_layers_with_kernels(plain), _layers_with_kernels(masked)):
        np.testing.assert_array_equal(m.kernel.numpy(), p.kernel.numpy())
        np.testing.assert_array_equal(m.bias.numpy(), p.bias.numpy())
        np.testing.assert_array_equal(m.mask.numpy(), np.ones(p.kernel.shape))


@pytest.mark.parametrize("fmt", ["weights.h5", "keras"])
@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_masked_weights_load_into_plain_model(tmp_path, kind, fmt):
    masked = _family_model("masked", kind)
    masks = _half_masks(masked)
    set_masks(masked, masks)
    path = _save(masked, tmp_path, fmt)
    plain = _family_model("plain", kind)
    plain.load_weights(path)
    for m, p in zip(_layers_with_kernels(masked), _layers_with_kernels(plain)):
        np.testing.assert_array_equal(p.kernel.numpy(), m.kernel.numpy())
        np.testing.assert_array_equal(p.bias.numpy(), m.bias.numpy())
        assert np.all(p.kernel.numpy()[masks[m.name] == 0] == 0.0)


@pytest.mark.parametrize("fmt", ["weights.h5", "keras"])
def test_plain_weights_reset_the_masks_of_a_pruned_model(tmp_path, fmt):
    plain = keras.Sequential([
        keras.Input((8, 8, 2)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(6, activation="relu", name="hidden"),
        keras.layers.Dense(3, name="out")])
    path = _save(plain, tmp_path, fmt)
    model = _model()
    set_masks(model, _half_masks(model))
    model.load_weights(path)
    for layer in prunable_layers(model):
        np.testing.assert_array_equal(layer.mask.numpy(), np.ones(layer.mask.shape))
        # the old mask must not have zeroed the kernel that was just loaded
        np.testing.assert_array_equal(layer.kernel.numpy(), plain.get_layer(layer.name).kernel.numpy())


def test_masked_conv_channels_first_adds_the_bias_on_the_channel_axis():
    """Output width == filters (4): Keras' own Conv2D call adds the bias on the last axis there."""
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5)).astype("float32")
    layer = MaskedConv2D(4, 2, data_format="channels_first", bias_initializer="random_normal")
    out = np.asarray(layer(x))
    last = keras.layers.Conv2D(4, 2)  # channels_last: the bias is on the last axis, rightly
    last.build((2, 5, 5, 3))
    last.set_weights([np.asarray(layer.kernel), np.asarray(layer.bias)])
    expected = np.transpose(np.asarray(last(np.transpose(x, (0, 2, 3, 1)))), (0, 3, 1, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_a_new_prunable_kind_is_one_small_class_and_declares_what_it_supports():
    """tflth.pruning.Prunable: a layer written against the interface alone is pruned, counted and
    refused where its kind lacks a feature; a layer that merely has a `mask` attribute is not
    prunable (no duck typing)."""
    from tflth import pruning
    from tflth.pruning import FEATURES, Prunable, is_prunable

    class HalfDense(Prunable, keras.layers.Dense):  # computes with half its masked kernel
        features = frozenset({"kernel_is_weights"})
        kind = "half"

        def build(self, input_shape):
            super().build(input_shape)
            self.mask = self.add_weight(shape=self.kernel.shape, initializer="ones", trainable=False, name="mask")

        def call(self, inputs):
            return keras.ops.matmul(inputs, 0.5 * self.kernel * self.mask) + self.bias

        def deterministic_weights(self):
            return 0.5 * self.kernel * self.mask, self.bias

        def apply_mask(self):
            self.kernel.assign(self.kernel * self.mask)

    class NotPrunable(keras.layers.Dense):
        def build(self, input_shape):
            super().build(input_shape)
            self.mask = self.add_weight(shape=self.kernel.shape, initializer="ones", trainable=False, name="mask")

    model = keras.Sequential([keras.Input((8,)), HalfDense(6, name="half"), NotPrunable(2, name="other")])
    assert [layer.name for layer in pruning.prunable_layers(model)] == ["half"]
    assert not is_prunable(HalfDense(3)) and set(FEATURES) >= HalfDense.features
    pruning.prune(model, 0.5)
    kernel, mask = model.get_layer("half").kernel.numpy(), model.get_layer("half").mask.numpy()
    assert mask.mean() == 0.5 and np.all(kernel[mask == 0] == 0)
    assert pruning.sparsity(model)["half"] == 0.5
    with pytest.raises(ValueError, match=r"^straight_through: layers \['half'\] do not support straight_through "):
        pruning.straight_through(model)
    with pytest.raises(ValueError, match=r"^straight_through=True: half layers have no straight-through mode"):
        from tflth.pruning.prunable import check_options
        check_options(HalfDense, straight_through=True)
