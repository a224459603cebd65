"""Bayesian layers (tflth.layers.DenseFlipout, ...): modes, KL loss, configs and saving, masks,
the families, argument checks, and the statistics of the three estimators."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import tflth
from tflth import priors, pruning
from tflth.layers import Conv2DFlipout, Conv2DReparameterization, DenseFlipout, DenseReparameterization
from tflth.ops import variational as vi

CASES = {
    "dense_reparam": (DenseReparameterization, {}),
    "dense_local": (DenseReparameterization, {"local_reparameterization": True}),
    "dense_flipout": (DenseFlipout, {}),
    "conv_reparam": (Conv2DReparameterization, {}),
    "conv_local": (Conv2DReparameterization, {"local_reparameterization": True}),
    "conv_flipout": (Conv2DFlipout, {}),
}
PRIORS = {"normal": priors.Normal(0.5), "log_uniform": priors.LogUniform(), "horseshoe": priors.Horseshoe(),
          "spike_and_slab": priors.SpikeAndSlab()}


def _is_conv(case):
    return case.startswith("conv")


def _input(case, batch=3, seed=0):
    shape = (batch, 5, 5, 3) if _is_conv(case) else (batch, 6)
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _layer(case, units=4, **kw):
    cls, extra = CASES[case]
    kw = {"dataset_size": 10, "activation": "tanh", "bias_initializer": "random_normal", **extra, **kw}
    return cls(units, 2, **kw) if _is_conv(case) else cls(units, **kw)


def _plain(layer):
    """A Keras layer computing like `layer`'s mean mode, once given its weights."""
    if isinstance(layer, keras.layers.Conv2D):
        return keras.layers.Conv2D(layer.filters, layer.kernel_size, padding=layer.padding, activation=layer.activation)
    return keras.layers.Dense(layer.units, activation=layer.activation)


def _perturb_posterior(layer, model, seed=0):
    """Random scales, prior variables and mask, so that nothing is at its initial value."""
    rng = np.random.default_rng(seed)
    shape = tuple(layer.kernel.shape)
    layer.prior_variables["kernel_rho"].assign(vi.softplus_inverse(rng.uniform(0.05, 0.5, shape)))
    for name, variable in layer.prior_variables.items():
        if name not in ("kernel_rho", "kl_weight"):
            variable.assign(np.asarray(variable) + rng.normal(0, 0.5, variable.shape))
    mask = (rng.random(shape) < 0.7).astype("float32")
    pruning.set_masks(model, {layer.name: mask})
    return mask


def _built(case, **kw):
    """(layer, input batch, a model of the layer alone, for the pruning functions)."""
    layer = _layer(case, **kw)
    x = _input(case)
    inputs = keras.Input(x.shape[1:])
    return layer, x, keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("case", CASES)
def test_mean_mode_is_deterministic_and_uses_the_posterior_means(case, prior):
    layer, x, model = _built(case, prior=PRIORS[prior])
    mask = _perturb_posterior(layer, model)
    out = np.asarray(layer(x))
    np.testing.assert_array_equal(out, layer(x, training=False))
    kernel, bias = (np.asarray(w) for w in layer.deterministic_weights())
    multiplier = {"normal": 1.0, "log_uniform": 1.0,
                  "horseshoe": np.asarray(layer.mean_multiplier()),
                  "spike_and_slab": 1 / (1 + np.exp(-np.asarray(layer.prior_variables.get("inclusion_logits", 0.0))))}
    np.testing.assert_allclose(kernel, np.asarray(layer.kernel) * multiplier[prior], rtol=1e-6)
    assert np.all(kernel[mask == 0] == 0)
    plain = _plain(layer)
    plain(x)
    plain.set_weights([kernel, bias])
    np.testing.assert_allclose(out, plain(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["dense", "dense_3d", "dense_output", "conv", "conv_channels_first"])
@pytest.mark.parametrize("case", ["reparam", "local", "flipout"])
def test_horseshoe_scales_are_drawn_per_example(case, layout):
    """Each example its own s z_g, multiplying its inputs (dense: input neurons) or its outputs (units
    with group='output', conv filters); replayed from the layer's seed against the hand-computed
    layer, with (almost) no weight noise. Copies of one input differ."""
    conv = layout.startswith("conv")
    prior = priors.Horseshoe(scale_init=0.5, group="output" if layout == "dense_output" else "")
    kw = dict(prior=prior, scale_init=1e-9, bias_initializer="random_normal", activation=None, seed=0, name="hs")
    if layout == "conv_channels_first":
        kw["data_format"] = "channels_first"
    layer = _layer(f"{'conv' if conv else 'dense'}_{case}", **kw)
    shape = {"dense": (1, 6), "dense_3d": (1, 2, 6), "dense_output": (1, 6), "conv": (1, 5, 5, 3),
             "conv_channels_first": (1, 3, 5, 5)}[layout]
    x = np.repeat(np.random.default_rng(0).normal(size=shape).astype("float32"), 16, axis=0)
    layer.build(x.shape)
    state = np.asarray(layer.seed_generator.state)
    out = np.asarray(layer(x, training=True))
    layer.seed_generator.state.assign(state)
    side, m = layer.prior.example_multiplier(layer.prior_variables, 16, layer.seed_generator)
    m = np.asarray(m)
    assert side == ("output" if conv or layout == "dense_output" else "input") and m.std(axis=0).min() > 0.05
    first = layout == "conv_channels_first"
    per_example = m.reshape((16, -1, 1, 1) if first else (16,) + (1,) * (x.ndim - 2) + (-1,))
    kernel = np.asarray(layer.kernel)
    if conv:
        plain = keras.layers.Conv2D(4, 2, data_format=layer.data_format, use_bias=False)
        plain.build(x.shape)
        plain.set_weights([kernel])
        expected = np.asarray(plain(x)) * per_example
    elif side == "input":
        expected = (x * per_example) @ kernel
    else:
        expected = (x @ kernel) * per_example
    bias = np.asarray(layer.bias).reshape((-1, 1, 1) if first else (-1,))
    np.testing.assert_allclose(out, expected + bias, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out[0], out[1], rtol=0.01)


def test_horseshoe_max_weight_scale_is_a_projection():
    """The cap puts a scale above it back on it after a step, and the data can still lower a scale
    at the cap (a clip in the forward pass would stop its gradient for good)."""
    layer = DenseReparameterization(3, prior=priors.Horseshoe(max_weight_scale=0.2), dataset_size=1, seed=0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rho = layer.prior_variables["kernel_rho"]
    assert np.allclose(layer.kernel_scale, tflth.layers.bayesian.SCALE_INIT)  # below the cap: unchanged
    rho.assign(np.full(rho.shape, vi.softplus_inverse(0.5), "float32"))
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_allclose(layer.kernel_scale, 0.2, rtol=1e-5)
    with tf.GradientTape() as tape:  # at the cap, the gradient reaches rho
        loss = ops.sum(ops.square(layer(x, training=True))) + layer.kl()
    assert np.abs(tape.gradient(loss, rho)).min() > 0


@pytest.mark.parametrize("case", CASES)
def test_training_and_sampling_are_stochastic(case):
    layer, x, model = _built(case, prior="horseshoe")
    _perturb_posterior(layer, model)
    mean = np.asarray(layer(x))
    a, b = np.asarray(layer(x, training=True)), np.asarray(layer(x, training=True))
    assert not np.allclose(a, b) and not np.allclose(a, mean)
    layer.sampling = True
    c, d = np.asarray(layer(x)), np.asarray(layer(x))
    assert not np.allclose(c, d) and not np.allclose(c, mean)
    layer.sampling = False
    np.testing.assert_array_equal(layer(x), mean)


@pytest.mark.parametrize("case", ["dense_flipout", "conv_local"])
@pytest.mark.parametrize("prior", PRIORS)
def test_kl_loss_is_the_kl_over_the_dataset_size_times_the_weight(case, prior):
    layer, x, model = _built(case, prior=PRIORS[prior], dataset_size=7)
    _perturb_posterior(layer, model)
    for training in (False, True):
        layer(x, training=training)
        assert len(layer.losses) == 1
        np.testing.assert_allclose(layer.losses[0], float(layer.kl()) / 7, rtol=1e-6)
    layer.kl_weight.assign(0.25)
    layer(x)
    np.testing.assert_allclose(layer.losses[0], 0.25 * float(layer.kl()) / 7, rtol=1e-6)
    assert float(layer.kl()) > 0
    assert not layer.kl_weight.trainable and all(v is not layer.kl_weight for v in layer.trainable_variables)


def test_the_kl_reaches_the_model_loss():
    layer = DenseFlipout(2, dataset_size=50, prior=priors.Normal(0.2))
    model = keras.Sequential([keras.Input((3,)), layer])
    model.compile(loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    mse = float(np.mean(np.asarray(model(x)) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + float(layer.kl()) / 50, rel=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_config_round_trip_keeps_every_argument(case):
    prior = priors.Horseshoe(global_scale=1e-3, scale=2.0, group="output", scale_init=0.3)
    layer = _layer(case, prior=prior, dataset_size=7, scale_init=0.02, seed=5, name="b", activation="relu")
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    assert (again.prior, again.dataset_size, again.scale_init, again.seed) == (prior, 7, 0.02, 5)
    if not case.endswith("flipout"):
        assert again.local_reparameterization == (case.endswith("local"))
    again(_input(case))  # builds: the initial scale is scale_init
    np.testing.assert_allclose(again.kernel_scale, np.full(again.kernel.shape, 0.02), rtol=1e-5)


SAVED = {"dense_reparam": "horseshoe", "dense_local": "log_uniform", "dense_flipout": "spike_and_slab",
         "conv_reparam": "spike_and_slab", "conv_local": "horseshoe", "conv_flipout": "normal"}


@pytest.mark.parametrize("case", CASES)
def test_keras_file_round_trip(case, tmp_path):
    x = _input(case)
    layer = _layer(case, prior=PRIORS[SAVED[case]], name="bayes")
    head = [keras.layers.Flatten()] if _is_conv(case) else []
    model = keras.Sequential([keras.Input(x.shape[1:]), layer, *head, DenseFlipout(2, dataset_size=10, name="out")])
    _perturb_posterior(layer, model)
    layer.kl_weight.assign(0.5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    again = loaded.get_layer("bayes")
    assert type(again) is type(layer) and again.prior == layer.prior
    np.testing.assert_array_equal(loaded(x), model(x))
    for name, variable in layer.prior_variables.items():
        np.testing.assert_array_equal(again.prior_variables[name], variable, err_msg=name)
    np.testing.assert_array_equal(again.mask, layer.mask)
    np.testing.assert_array_equal(again.kernel, layer.kernel)
    assert float(again.kl_weight) == 0.5


def _replayed(layer, x_a, x_b):
    """Two training passes with the same noise (the seed generator's state replayed)."""
    state = np.asarray(layer.seed_generator.state)
    a = np.asarray(layer(x_a, training=True))
    layer.seed_generator.state.assign(state)
    b = np.asarray(layer(x_b, training=True))
    return a, b


@pytest.mark.parametrize("case", CASES)
def test_pruned_weights_are_zero_in_every_sample(case, prior="spike_and_slab"):
    """With the noise replayed, changing input i changes output j exactly when weight (i, j) is
    kept: a pruned weight, sampled or flipped, contributes nothing (conv: input channel i,
    filter j)."""
    layer, x, model = _built(case, prior=prior, activation=None, use_bias=False, units=5)
    channels = x.shape[-1]
    rng = np.random.default_rng(3)
    pairs = (rng.random((channels, 5)) < 0.5).astype("float32")
    pairs[0] = 0.0  # input 0 feeds nothing
    pairs[1, :] = 0.0
    pairs[1, 2] = 1.0  # input 1 feeds output 2 only
    mask = np.broadcast_to(pairs, layer.kernel.shape).copy()
    layer.prior_variables["kernel_rho"].assign(np.full(layer.kernel.shape, vi.softplus_inverse(0.5), "float32"))
    pruning.set_masks(model, {layer.name: mask})
    a, b = _replayed(layer, x, x)
    np.testing.assert_array_equal(a, b)  # the replay is exact
    assert not np.allclose(a, layer(x))  # and noisy
    for i in range(channels):
        x2 = x.copy()
        x2[..., i] += 1.0
        a, b = _replayed(layer, x, x2)
        changed = np.any(a != b, axis=tuple(range(a.ndim - 1)))
        np.testing.assert_array_equal(changed, pairs[i] == 1, err_msg=f"input {i}")


def test_prune_and_sparsity_work_on_a_bayesian_model():
    inputs = keras.Input((6, 6, 2))
    x = Conv2DFlipout(4, 3, dataset_size=10, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = DenseReparameterization(3, dataset_size=10, local_reparameterization=True, name="output")(x)
    model = keras.Model(inputs, outputs)
    assert [layer.name for layer in pruning.prunable_layers(model)] == ["conv", "output"]
    pruning.prune(model, 0.5)
    assert pruning.sparsity(model) == {"conv": 0.5, "output": 0.5, "total": 0.5}
    for layer in pruning.prunable_layers(model):
        assert np.all(np.asarray(layer.kernel)[np.asarray(layer.mask) == 0] == 0)
    pruning.prune(model, 0.5, score="snr")
    assert pruning.sparsity(model)["total"] == 0.75


@pytest.mark.parametrize("family", ["flipout", "reparam", "local_reparam"])
@pytest.mark.parametrize("name", ["lenet_300_100", "lenet5", "conv2"])
def test_quick_models_build_from_the_bayesian_families(name, family):
    shape = (16, 16, 3) if name == "conv2" else (28, 28, 1)  # conv2 is for 32 x 32 images: 4x the fc1 weights
    model = tflth.models.get_model(name, family=family, input_shape=shape, dataset_size=1000, prior="log_uniform")
    layers = pruning.prunable_layers(model)
    dense, conv = {"flipout": (DenseFlipout, Conv2DFlipout)}.get(
        family, (DenseReparameterization, Conv2DReparameterization))
    assert layers and all(type(layer) is (conv if len(layer.kernel.shape) > 2 else dense) for layer in layers)
    assert all(layer.prior == priors.LogUniform() and layer.dataset_size == 1000 for layer in layers)
    if family != "flipout":
        assert all(layer.local_reparameterization == (family == "local_reparam") for layer in layers)
    assert layers[-1].name == "output" and model.output.shape == (None, 10)
    assert tflth.layers.get_family(family).takes_dataset_size


def test_a_bayesian_model_runs_a_training_pass():
    model = tflth.models.lenet_300_100(family="local_reparam", dataset_size=100, prior="log_uniform")
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    out = np.asarray(model(x, training=True))
    assert out.shape == (2, 10) and len(model.losses) == 3


@pytest.mark.parametrize("case", ["dense_reparam", "dense_local", "dense_flipout"])
def test_dense_layers_take_inputs_of_any_rank(case):
    layer = _layer(case)
    x = np.random.default_rng(0).normal(size=(2, 3, 6)).astype("float32")
    assert tuple(layer(x, training=True).shape) == (2, 3, 4)
    kernel, bias = (np.asarray(w) for w in layer.deterministic_weights())
    np.testing.assert_allclose(layer(x), np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw,match", [
    ({"dataset_size": None}, r"^dataset_size=None"),
    ({"dataset_size": 0}, r"^dataset_size=0: must be an integer >= 1"),
    ({"dataset_size": 2.5}, r"^dataset_size=2.5"),
    ({"dataset_size": True}, r"^dataset_size=True"),
    ({"scale_init": 0}, r"^scale_init=0\b"),
    ({"scale_init": -0.1}, r"^scale_init=-0.1\b"),
    ({"scale_init": "0.1"}, r"^scale_init='0.1'"),
    ({"scale_init": True}, r"^scale_init=True"),
    ({"scale_init": float("inf")}, r"^scale_init=inf"),
    ({"prior": "nope"}, r"^prior='nope' is not a prior"),
    ({"targeted_dropout": 0.5}, r"^targeted_dropout=0.5"),
])
@pytest.mark.parametrize("case", ["dense_reparam", "conv_flipout"])
def test_bad_arguments_are_one_line_value_errors(case, kw, match):
    with pytest.raises(ValueError, match=match) as info:
        _layer(case, **kw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["dense_reparam", "conv_flipout"])
def test_numpy_numbers_are_accepted(case):
    layer = _layer(case, dataset_size=np.int64(7), scale_init=np.float32(0.01))
    assert layer.dataset_size == 7 and type(layer.dataset_size) is int
    assert keras.layers.deserialize(keras.layers.serialize(layer)).scale_init == pytest.approx(0.01)


def test_bad_local_reparameterization():
    with pytest.raises(ValueError, match=r"^local_reparameterization='yes': must be True or False$"):
        DenseReparameterization(2, dataset_size=1, local_reparameterization="yes")


def test_the_family_needs_a_dataset_size():
    with pytest.raises(ValueError, match=r"^dataset_size=None"):
        tflth.models.lenet_300_100(family="flipout")


U = 20_000  # output units with identical weight columns: U independent draws per call


@pytest.mark.parametrize("case", CASES)
def test_estimators_have_the_posterior_mean_and_variance(case):
    """Each unit's column of weights is N(m, s^2) elementwise, so its pre-activation for x is
    N(x . m, x^2 . s^2) under every estimator; the estimators differ in how two examples in one
    batch correlate: one weight sample per batch (reparameterization) gives them the same output,
    local reparameterization independent ones, Flipout decorrelated ones."""
    layer = _layer(case, units=U, activation=None, use_bias=False)
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(2, 2, 3) if _is_conv(case) else (6,)).astype("float32")
    x = np.stack([x0, x0, -2 * x0])  # the conv kernel is 2x2: one output position
    layer(x)
    fan_in = int(np.prod(layer.kernel.shape[:-1]))
    m = rng.normal(0, 1, fan_in).astype("float32")
    s = rng.uniform(0.2, 1.0, fan_in).astype("float32")
    layer.kernel.assign(np.broadcast_to(m[:, None], (fan_in, U)).reshape(layer.kernel.shape))
    layer.prior_variables["kernel_rho"].assign(
        np.broadcast_to(vi.softplus_inverse(s)[:, None], (fan_in, U)).reshape(layer.kernel.shape))
    out = np.asarray(layer(x, training=True)).reshape(3, U)
    for row, xr in zip(out, x.reshape(3, fan_in)):
        mean, variance = float(xr @ m), float(xr ** 2 @ s ** 2)
        assert row.mean() == pytest.approx(mean, abs=5 * np.sqrt(variance / U))
        assert row.var() == pytest.approx(variance, rel=0.05)
    correlation = np.corrcoef(out[0], out[1])[0, 1]
    if case.endswith("reparam"):
        assert correlation == pytest.approx(1.0)
    else:
        assert abs(correlation) < 0.05


def test_a_conv_bayesian_model_fits_and_pruned_weights_get_no_gradient():
    """A graph-mode fit (dynamic batch dimension in the noise shapes): pruned weights stay zero,
    and their scales and inclusion logits do not move (they get no gradient)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 2))
    x = Conv2DReparameterization(3, 2, dataset_size=8, local_reparameterization=True, prior="spike_and_slab",
                                 name="c1")(inputs)
    x = Conv2DFlipout(3, 2, dataset_size=8, activation="relu", prior="log_uniform", name="c2")(x)
    x = keras.layers.Flatten()(x)
    outputs = DenseReparameterization(2, dataset_size=8, name="out")(x)
    model = keras.Model(inputs, outputs)
    pruning.prune(model, 0.5)
    layers = pruning.prunable_layers(model)
    before = {layer.name: {k: np.asarray(v).copy() for k, v in layer.prior_variables.items()} for layer in layers}
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    data = np.random.default_rng(0).normal(size=(8, 4, 4, 2)).astype("float32")
    history = model.fit(data, np.arange(8) % 2, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for layer in layers:
        pruned = np.asarray(layer.mask) == 0
        assert np.all(np.asarray(layer.kernel)[pruned] == 0)
        for name in ("kernel_rho", "inclusion_logits"):
            if name in layer.prior_variables:
                after = np.asarray(layer.prior_variables[name])
                np.testing.assert_array_equal(after[pruned], before[layer.name][name][pruned], err_msg=name)
                assert not np.array_equal(after[~pruned], before[layer.name][name][~pruned])  # the rest learns
