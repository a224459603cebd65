"""tflth.sparsify: a Keras model of your own, its layers made a layer family's,
computes what it computed, prunes, trains with exact zeros and saves."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tflth
from tflth import bayes, internals, pruning
from tflth.export import save_sparse, strip

X = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def mobilenet():
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10)


def _replaced(model, family):
    return [layer for layer in internals.all_layers(model)
            if tflth.layers.get_family(family).constructor(type(layer)) is not None]


@pytest.mark.parametrize("family, kwargs", [("masked", {}), ("l0", {"droprate_init": 0.01, "dataset_size": 100}),
                                            ("flipout", {"dataset_size": 100})])
def test_a_keras_application_computes_the_same_in_every_family(mobilenet, family, kwargs):
    converted = tflth.sparsify(mobilenet, family, **kwargs)
    # masked: every Conv2D, DepthwiseConv2D and the Dense; L0 and Bayesian: the Conv2D and Dense alone
    counts = {"masked": 36 + 17, "l0": 36, "flipout": 36}
    assert len(_replaced(mobilenet, family)) == counts[family]
    assert len(pruning.prunable_layers(converted)) == counts[family]
    deployed = bayes.to_deterministic(converted) if family == "flipout" else converted  # Bayesian: the means
    np.testing.assert_allclose(deployed(X, training=False), mobilenet(X, training=False), atol=1e-6)
    assert not pruning.prunable_layers(mobilenet)  # the original is left as it was


@pytest.mark.parametrize("name, prunable", [("ResNet50", 54), ("EfficientNetB0", 82), ("DenseNet121", 121)])
def test_keras_applications_convert_and_compute_the_same(name, prunable):
    model = getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None, classes=10)
    converted = tflth.sparsify(model)
    assert len(pruning.prunable_layers(converted)) == len(_replaced(model, "masked")) == prunable
    np.testing.assert_allclose(converted(X, training=False), model(X, training=False), atol=1e-6)
    pruning.prune_to(converted, 0.8, allocation="erk")
    assert pruning.sparsity(converted)["total"] == pytest.approx(0.8, abs=0.01)


def test_a_converted_model_prunes_trains_with_exact_zeros_and_saves(tmp_path):
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    block = keras.Sequential([keras.layers.Dense(8, activation="relu", name="inner")], name="block")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(block))
    converted = tflth.sparsify(model, exclude=["logits"])
    assert sorted(layer.name for layer in pruning.prunable_layers(converted)) == ["hidden", "inner"]
    np.testing.assert_array_equal(converted.get_layer("logits").get_weights()[0], model.get_layer("logits").kernel)
    pruning.prune_to(converted, 0.5)
    converted.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.random.default_rng(1).normal(size=(32, 6)), np.arange(32) % 3
    converted.fit(x, y, epochs=1, batch_size=8, verbose=0)
    masks = pruning.get_masks(converted)
    for layer in pruning.prunable_layers(converted):
        assert np.all(np.asarray(layer.kernel)[masks[layer.name] == 0] == 0)
    assert pruning.sparsity(converted)["total"] == pytest.approx(0.5, abs=0.01)
    path = str(tmp_path / "converted.keras")
    converted.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: tflth is imported
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), converted.predict(x, verbose=0))


@keras.saving.register_keras_serializable(package="test_conversion")
class _Block(keras.layers.Layer):
    """A layer of your own holding Keras layers, in a list too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inside = keras.layers.Dense(4, activation="relu", name="inside")
        self.more = [keras.layers.Dense(4, name="more")]

    def build(self, input_shape):
        self.inside.build(input_shape)
        self.more[0].build(tuple(input_shape[:-1]) + (4,))

    def call(self, x):
        return self.more[0](self.inside(x))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.block = _Block(name="block")
        self.logits = keras.layers.Dense(3, name="logits")

    def call(self, x):
        return self.logits(self.block(x))


def _transformer():
    """A small attention model: MultiHeadAttention (EinsumDense inside), a residual sum (an
    operation, not a layer), LayerNormalization, a block of your own."""
    inputs = x = keras.Input((6, 8))
    for name in ("mha", "mha2"):
        x = keras.layers.LayerNormalization()(x + keras.layers.MultiHeadAttention(2, 4, name=name)(x, x))
    x = _Block(name="block")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling1D()(x)))


def test_layers_held_by_layers_are_converted_where_they_are(tmp_path):
    model, x = _transformer(), np.random.default_rng(3).normal(size=(8, 6, 8)).astype("float32")
    converted = tflth.sparsify(model)
    # Each MultiHeadAttention holds a "query": held layers whose names repeat are named by their holder.
    held = {f"{mha}_{p}" for mha in ("mha", "mha2") for p in ("query", "key", "value", "attention_output")}
    assert {layer.name for layer in pruning.prunable_layers(converted)} == held | {"inside", "more", "logits"}
    paths = [v.path for v in converted.weights]
    assert len(paths) == len(set(paths)) and "mha2/mha2_query/kernel" in paths  # optimizer slots go by path
    np.testing.assert_allclose(converted(x), model(x), atol=1e-6)
    pruning.prune_to(converted, 0.5, allocation="uniform")
    assert all(s == pytest.approx(0.5, abs=0.02) for s in pruning.sparsity(converted).values())
    converted.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    converted.fit(x, np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    for layer in pruning.prunable_layers(converted):
        assert np.all(np.asarray(layer.kernel)[np.asarray(layer.mask) == 0] == 0), layer.name
    plain = strip(converted)
    assert not pruning.prunable_layers(plain)
    np.testing.assert_allclose(plain(x), converted(x), atol=1e-6)
    converted.save(str(tmp_path / "t.keras"))  # held layers come back plain, their zeros kept
    np.testing.assert_allclose(keras.models.load_model(str(tmp_path / "t.keras"))(x), converted(x), atol=1e-6)


class _Holder(keras.layers.Layer):
    """Layers held in a dict and a tuple, one of them twice; and optionally a Sequential."""

    def __init__(self, sequential=False, **kwargs):
        super().__init__(**kwargs)
        shared = keras.layers.Dense(4, name="shared")
        self.heads = {"a": shared}
        self.pair = (shared, keras.layers.Dense(4, name="second"))
        self.ffn = keras.Sequential([keras.layers.Dense(4, name="ffn_dense")]) if sequential else None

    def build(self, input_shape):
        for layer in (self.heads["a"], self.pair[1]) + ((self.ffn,) if self.ffn else ()):
            layer.build(input_shape)

    def call(self, x):
        y = self.heads["a"](x) + self.pair[0](x) + self.pair[1](x)
        return y + self.ffn(x) if self.ffn else y


def test_held_layers_in_dicts_tuples_and_shared_are_replaced_once():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _Holder(name="holder")(inputs))
    x = np.random.default_rng(4).normal(size=(3, 4)).astype("float32")
    converted = tflth.sparsify(model)
    holder = converted.get_layer("holder")
    assert holder.heads["a"] is holder.pair[0] and type(holder.pair[1]).__qualname__ == "MaskedDense"
    assert sorted(layer.name for layer in pruning.prunable_layers(converted)) == ["second", "shared"]
    np.testing.assert_allclose(converted(x), model(x), atol=1e-6)
    pruning.prune_to(converted, 0.5)
    masked = converted(x)
    np.testing.assert_allclose(masked, strip(converted)(x), atol=1e-6)

    with_sequential = keras.Model(inputs, _Holder(sequential=True, name="holder2")(inputs))
    with pytest.raises(ValueError, match=r"^layers \['ffn_dense'\] sit in a Functional or Sequential model that "
                                         r"a layer of your own holds, which Keras cannot rebuild where it is"):
        tflth.sparsify(with_sequential)
    assert len(pruning.prunable_layers(tflth.sparsify(with_sequential, exclude=["ffn_dense"]))) == 2


def test_layers_whose_kernel_is_not_a_weight_are_refused_by_name():
    lora = keras.layers.Dense(3, name="adapted")
    model = keras.Sequential([keras.Input((4,)), lora])
    lora.enable_lora(2)
    with pytest.raises(ValueError, match=r"layer 'adapted' \(Dense\) cannot be made a masked layer: a LoRA layer's "
                                         r"kernel is computed from other weights; merge LoRA into it first$"):
        tflth.sparsify(model)


def test_a_subclassed_model_is_converted_in_place():
    model, x = _Subclassed(), np.ones((2, 5), "float32")
    before = np.asarray(model(x))
    with pytest.raises(ValueError, match=r"^in_place=False: model 'subclassed' is subclassed, which Keras cannot "
                                         r"copy; pass in_place=True to convert it where it is$"):
        tflth.sparsify(model)
    assert tflth.sparsify(model, in_place=True, exclude=["logits"]) is model
    assert sorted(layer.name for layer in pruning.prunable_layers(model)) == ["inside", "more"]
    np.testing.assert_allclose(model(x), before, atol=1e-6)
    pruning.prune_to(model, 0.5)
    model.compile("adam", "mse")
    model.fit(x, np.zeros((2, 3)), verbose=0)
    assert pruning.sparsity(model)["total"] == 0.5


def test_bad_input_is_one_line():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    cases = [((object(),), {}, r"^model: expected a keras.Model \(Sequential, Functional or subclassed\), got object$"),
             ((model, "nope"), {}, r"^family='nope' is unknown; allowed: \["),
             ((model,), {"exclude": ["e"]}, r"^exclude=\['e'\]: no such layer in model "),
             ((model,), {"units": 3}, r"^model 'sequential\w*' cannot be copied layer by layer: layer 'd' \(Dense\) "
                                      r"cannot be made a masked layer: \['units'\] are arguments of the layer itself; "
                                      r"sparsify sets only the family's, initializers, regularizers and constraints$"),
             ((model,), {"per_layer": {"e": {}}}, r"^per_layer=\['e'\]: no such layer in model "),
             ((model,), {"in_place": True}, r"^in_place=True: model 'sequential\w*' is a Functional or Sequential "
                                            r"model, copied layer by layer; leave in_place=False$"),
             ((_Subclassed(),), {}, r"^model '\w+' is not built; call it on data or build it first$")]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            tflth.sparsify(*args, **kwargs)
    assert os.path.basename(tflth.conversion.__file__) == "conversion.py"


def test_weights_files_go_both_ways(tmp_path):
    """A plain model's .weights.h5 loads into its converted copy, and the pruned copy's into the plain model."""
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(
        keras.layers.Dense(16, activation="relu", name="hidden")(inputs)))
    converted = tflth.sparsify(model)
    x = np.random.default_rng(2).normal(size=(5, 6)).astype("float32")
    model.save_weights(str(tmp_path / "plain.weights.h5"))
    for layer in pruning.prunable_layers(converted):
        layer.kernel.assign(np.zeros(layer.kernel.shape))
    converted.load_weights(str(tmp_path / "plain.weights.h5"))
    np.testing.assert_array_equal(converted(x), model(x))
    pruning.prune_to(converted, 0.5)
    converted.save_weights(str(tmp_path / "pruned.weights.h5"))
    model.load_weights(str(tmp_path / "pruned.weights.h5"))
    np.testing.assert_array_equal(model(x), converted(x))
    assert np.mean(np.asarray(model.get_layer("hidden").kernel) == 0) == pytest.approx(0.5, abs=0.02)


def test_a_pruned_mobilenet_exports_and_loads_without_tflth(mobilenet, tmp_path):
    converted = tflth.sparsify(mobilenet)
    pruning.prune_to(converted, 0.8, allocation="erk")
    out = str(tmp_path / "export")
    report = save_sparse(converted, out, format="sparse", sample=X)
    assert len(report["stored_dense"]) == 17  # the DepthwiseConv2D layers: no sparse kernel for their kind
    np.save(tmp_path / "x.npy", X)
    code = ("import sys, numpy as np, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
            "np.save(sys.argv[3], m.serve(np.load(sys.argv[2])).numpy()); assert 'tflth' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code, out, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), converted(X, training=False), atol=1e-5)
