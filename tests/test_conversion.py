"""tflth.sparsify: a Keras model of your own, its Dense and Conv2D layers made a layer family's,
computes what it computed, prunes, trains with exact zeros and saves."""
import os

import keras
import numpy as np
import pytest

import tflth
from tflth import bayes, internals, pruning

X = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def mobilenet():
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10)


@pytest.mark.parametrize("family, kwargs", [("masked", {}), ("l0", {"droprate_init": 0.01, "dataset_size": 100}),
                                            ("flipout", {"dataset_size": 100})])
def test_a_keras_application_computes_the_same_in_every_family(mobilenet, family, kwargs):
    converted = tflth.sparsify(mobilenet, family, **kwargs)
    replaced = [layer for layer in internals.all_layers(mobilenet) if type(layer) in tflth.conversion.REPLACED]
    assert len(pruning.prunable_layers(converted)) == len(replaced) == 36
    deployed = bayes.to_deterministic(converted) if family == "flipout" else converted  # Bayesian: the means
    np.testing.assert_allclose(deployed(X, training=False), mobilenet(X, training=False), atol=1e-6)
    assert not pruning.prunable_layers(mobilenet)  # the original is left as it was


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


class _Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inside = keras.layers.Dense(2, name="inside")

    def call(self, x):
        return self.inside(x)


def test_bad_input_is_one_line():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    cases = [((object(),), {}, r"^model: expected a keras.Model \(Sequential or Functional\), got object$"),
             ((model, "nope"), {}, r"^family='nope' is unknown; allowed: \["),
             ((model,), {"exclude": ["e"]}, r"^exclude=\['e'\]: no such layer in model "),
             ((model,), {"units": 3}, r"^model 'sequential\w*' cannot be copied layer by layer: layer 'd' \(Dense\) "
                                      r"cannot be made a masked layer: .* multiple values for keyword argument 'units'$"),
             ((keras.Sequential([keras.Input((3,)), _Block()]),), {},
              r"^layers \['inside'\] sit inside a layer of your own")]
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
