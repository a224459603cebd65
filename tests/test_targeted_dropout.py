import keras
import numpy as np
import pytest
import tensorflow as tf

from tflth.layers import MaskedConv2D, MaskedDense
from tflth.ops.targeted_dropout import targeted_unit_dropout, targeted_weight_dropout
from tflth.pruning import set_masks

@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)  # the layers' seed generators start from Keras' global seed


def _kernel(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _candidates(kernel, fraction):
    """The floor(fraction * fan_in) lowest-|w| weights of each column, by a numpy sort."""
    columns = np.abs(kernel.reshape(-1, kernel.shape[-1]))
    ranks = np.argsort(np.argsort(columns, axis=0, kind="stable"), axis=0, kind="stable")
    return (ranks < int(fraction * columns.shape[0] + 1e-9)).reshape(kernel.shape)


def _low_units(kernel, fraction):
    norms = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), axis=0)
    ranks = np.argsort(np.argsort(norms, kind="stable"), kind="stable")
    return ranks < int(fraction * norms.size + 1e-9)


def _within(freq, p, n):
    """`freq` is a binomial(n, p) frequency within 5 standard deviations."""
    return abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n)


# The ops.

@pytest.mark.parametrize("shape", [(20, 6), (3, 3, 4, 8)])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 1.0])
def test_weight_dropout_only_drops_the_lowest_fraction_of_each_column(shape, fraction):
    kernel = _kernel(*shape)
    candidates = _candidates(kernel, fraction)
    seed = keras.random.SeedGenerator(1)
    dropped_any = np.zeros(shape, bool)
    for _ in range(20):
        out = targeted_weight_dropout(kernel, fraction, 0.5, seed).numpy()
        changed = out != kernel
        assert np.all(out[changed] == 0.0)  # dropped means zeroed, never rescaled
        assert not np.any(changed & ~candidates)  # weights above the column's threshold never change
        dropped_any |= changed
    assert np.array_equal(dropped_any, candidates)  # and every candidate is dropped sometimes


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_weight_dropout_drops_candidates_with_probability_rate(rate):
    kernel = _kernel(40, 10)
    candidates = _candidates(kernel, 0.5)  # 200 per draw
    seed = keras.random.SeedGenerator(2)
    drops = [targeted_weight_dropout(kernel, 0.5, rate, seed).numpy()[candidates] == 0 for _ in range(50)]
    assert _within(np.mean(drops), rate, np.size(drops))


@pytest.mark.parametrize("shape", [(30, 12), (3, 3, 2, 12)])
def test_unit_dropout_drops_whole_low_norm_columns(shape):
    kernel = _kernel(*shape) * np.linspace(0.1, 2.0, shape[-1])[np.random.default_rng(1).permutation(shape[-1])]
    low = _low_units(kernel, 0.5)
    seed = keras.random.SeedGenerator(3)
    drops = []
    for _ in range(100):
        out = targeted_unit_dropout(kernel, 0.5, 0.4, seed).numpy().reshape(-1, shape[-1])
        zero = np.all(out == 0, axis=0)
        kept = np.all(out == kernel.reshape(-1, shape[-1]), axis=0)
        assert np.all(zero | kept)  # a unit is dropped whole or not at all
        assert not np.any(zero & ~low)  # only among the lowest-norm half
        drops.append(zero[low])
    assert _within(np.mean(drops), 0.4, np.size(drops))


@pytest.mark.parametrize("op", [targeted_weight_dropout, targeted_unit_dropout])
@pytest.mark.parametrize("fraction,rate", [(0.5, 0.0), (0.0, 0.5)])
def test_no_rate_or_no_candidates_is_the_identity(op, fraction, rate):
    kernel = _kernel(3, 3, 4, 8)
    np.testing.assert_array_equal(np.asarray(op(kernel, fraction, rate, 0)), kernel)


def test_pruned_zeros_rank_lowest_and_stay_zero():
    kernel = _kernel(20, 6)
    kernel[:4] = 0.0  # 4 pruned weights per column; 10 candidates: the zeros and 6 more
    candidates = _candidates(kernel, 0.5)
    assert np.all(candidates[:4])
    seed = keras.random.SeedGenerator(4)
    for _ in range(20):
        out = targeted_weight_dropout(kernel, 0.5, 0.9, seed).numpy()
        assert np.all(out[:4] == 0.0)
        assert np.array_equal(out[~candidates], kernel[~candidates])
    kernel[:15] = 0.0  # more zeros than candidates: nothing else may change
    for _ in range(5):
        np.testing.assert_array_equal(targeted_weight_dropout(kernel, 0.5, 0.9, seed).numpy(), kernel)


def test_pruned_units_rank_lowest():
    kernel = _kernel(20, 6)
    kernel[:, [1, 4, 5]] = 0.0  # three pruned units: exactly the 3 candidates of gamma = 0.5
    seed = keras.random.SeedGenerator(4)
    for _ in range(10):
        np.testing.assert_array_equal(targeted_unit_dropout(kernel, 0.5, 0.9, seed).numpy(), kernel)


def test_tensor_arguments_under_xla():
    kernel = _kernel(3, 3, 4, 8)
    candidates = _candidates(kernel, 0.5)

    @tf.function(jit_compile=True)
    def both(fraction, rate):
        return targeted_weight_dropout(kernel, fraction, rate, 9), targeted_unit_dropout(kernel, fraction, rate, 9)

    weights, units = (t.numpy() for t in both(tf.constant(0.5), tf.constant(1.0)))
    np.testing.assert_array_equal(weights == 0, candidates)  # rate 1: every candidate
    np.testing.assert_array_equal(np.all(units.reshape(-1, 8) == 0, axis=0), _low_units(kernel, 0.5))
    weights, units = (t.numpy() for t in both(tf.constant(0.5), tf.constant(0.0)))
    np.testing.assert_array_equal(weights, kernel)
    np.testing.assert_array_equal(units, kernel)


def test_an_int_seed_repeats_and_a_seed_generator_does_not():
    kernel = _kernel(20, 6)
    a, b = (targeted_weight_dropout(kernel, 0.5, 0.5, 7).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    seed = keras.random.SeedGenerator(7)
    a, b = (targeted_weight_dropout(kernel, 0.5, 0.5, seed).numpy() for _ in range(2))
    assert not np.array_equal(a, b)


def test_gradient_flows_to_kept_weights_only():
    kernel = tf.Variable(_kernel(20, 6))
    with tf.GradientTape() as tape:
        out = targeted_weight_dropout(kernel, 0.5, 0.5, 5)
        loss = tf.reduce_sum(out)
    grad = tape.gradient(loss, kernel).numpy()
    np.testing.assert_array_equal(grad, (out.numpy() != 0).astype("float32"))


# The layers.

def _dense_model(**td):
    return keras.Sequential([keras.Input((12,)), MaskedDense(16, activation="relu", name="hidden", **td),
                             MaskedDense(3, name="out", **td)])


def _conv_model(**td):
    return keras.Sequential([keras.Input((6, 6, 2)), MaskedConv2D(8, 3, activation="relu", name="conv", **td),
                             keras.layers.Flatten(), MaskedDense(3, name="out", **td)])


def _data(model, n=16):
    rng = np.random.default_rng(1)
    return rng.random((n,) + model.input_shape[1:]).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("make", [_dense_model, _conv_model])
@pytest.mark.parametrize("unit", ["weight", "unit"])
def test_training_drops_and_evaluation_is_the_plain_masked_layer(make, unit):
    model = make(targeted_dropout=0.5, targeted_fraction=0.5, targeted_unit=unit)
    plain = make()
    plain.set_weights(model.get_weights())
    x, _ = _data(model)
    evaluation = model(x).numpy()
    np.testing.assert_array_equal(evaluation, model(x, training=False).numpy())
    np.testing.assert_allclose(evaluation, plain(x).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(plain(x, training=True).numpy(), evaluation, rtol=1e-6, atol=1e-6)  # off: untouched
    trained = [model(x, training=True).numpy() for _ in range(5)]
    # each call may drop nothing (unit dropout of 3 output units has 1 candidate), not all
    assert sum(not np.allclose(t, evaluation) for t in trained) >= 3  # Sequential passes `training` down


def test_unit_dropout_in_a_conv_layer_silences_whole_filters():
    layer = MaskedConv2D(16, 3, use_bias=False, targeted_dropout=0.9, targeted_fraction=1.0, targeted_unit="unit")
    x = np.random.default_rng(2).random((4, 6, 6, 2)).astype("float32")
    assert not np.any(np.all(layer(x).numpy() == 0, axis=(0, 1, 2)))
    silent = np.all(layer(x, training=True).numpy() == 0, axis=(0, 1, 2))
    assert 8 <= silent.sum() < 16  # about 90% of the 16 filters, whole filters


@pytest.mark.parametrize("unit", ["weight", "unit"])
def test_pruned_weights_stay_zero_while_training_with_targeted_dropout(unit):
    model = _conv_model(targeted_dropout=0.5, targeted_unit=unit)
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(model, 32)
    rng = np.random.default_rng(3)
    masks = {layer.name: (rng.random(layer.mask.shape) < 0.5).astype("float32")
             for layer in model.layers if hasattr(layer, "mask")}
    set_masks(model, masks)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    for name, mask in masks.items():
        kernel = model.get_layer(name).kernel.numpy()
        assert np.all(kernel[mask == 0] == 0.0)
        assert np.count_nonzero(kernel[mask == 1]) == mask.sum()  # dropout zeroes a step's copy, not the variable


def test_default_layers_have_no_seed_state():
    layer = MaskedDense(3)
    layer.build((None, 4))
    assert [v.name for v in layer.variables] == ["kernel", "bias", "mask"]
    on = MaskedDense(3, targeted_dropout=0.5)
    on.build((None, 4))
    assert len(on.variables) == 4 and [w.name for w in on.weights] == ["kernel", "bias", "mask"]


@pytest.mark.parametrize("cls,args", [(MaskedDense, (5,)), (MaskedConv2D, (5, 3))])
def test_config_round_trip(cls, args):
    layer = cls(*args, targeted_dropout=np.float32(0.25), targeted_fraction=0.75, targeted_unit="unit")
    config = layer.get_config()
    assert (config["targeted_dropout"], config["targeted_fraction"], config["targeted_unit"]) == (0.25, 0.75, "unit")
    assert cls.from_config(config).get_config() == config
    default = cls(*args).get_config()
    assert (default["targeted_dropout"], default["targeted_fraction"], default["targeted_unit"]) == (0.0, 0.5, "weight")
    assert cls.from_config(default).get_config() == default


def test_keras_file_round_trip(tmp_path):
    model = _conv_model(targeted_dropout=0.5, targeted_fraction=0.25, targeted_unit="unit")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for name in ("conv", "out"):
        a, b = model.get_layer(name), loaded.get_layer(name)
        assert type(b) is type(a)
        assert (b.targeted_dropout, b.targeted_fraction, b.targeted_unit) == (0.5, 0.25, "unit")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    evaluation = loaded(x).numpy()
    assert any(not np.allclose(loaded(x, training=True).numpy(), evaluation) for _ in range(10))


@pytest.mark.parametrize("make,unit", [(_dense_model, "weight"), (_conv_model, "unit")])
def test_fit_with_jit_compile(make, unit):
    model = make(targeted_dropout=0.5, targeted_unit=unit)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    x, y = _data(model)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # 2 steps
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("cls,args", [(MaskedDense, (5,)), (MaskedConv2D, (5, 3))])
@pytest.mark.parametrize("kwargs,name", [
    (dict(targeted_dropout=1.0), "targeted_dropout"),
    (dict(targeted_dropout=-0.1), "targeted_dropout"),
    (dict(targeted_dropout="0.5"), "targeted_dropout"),
    (dict(targeted_fraction=1.5), "targeted_fraction"),
    (dict(targeted_fraction=None), "targeted_fraction"),
    (dict(targeted_fraction=True), "targeted_fraction"),
    (dict(targeted_unit="neuron"), "targeted_unit"),
])
def test_bad_arguments_raise(cls, args, kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        cls(*args, **kwargs)
    assert "\n" not in str(info.value)
