"""tflth.bayes (predict, calibration, to_deterministic, KLWarmup) and the uncertainty scores and
threshold pruning of tflth.pruning."""
import math

import keras
import numpy as np
import pytest

import tflth
from tflth import bayes, priors, pruning
from tflth.export import strip
from tflth.layers import (Conv2DFlipout, Conv2DReparameterization, DenseFlipout, DenseReparameterization, L0Dense,
                          MaskedConv2D, MaskedDense)
from tflth.ops import variational as vi
from tflth.pruning import compact, scores


def _tiny(seed=0, prior="normal"):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((5,)), DenseFlipout(8, activation="relu", dataset_size=20, prior=prior,
                                                             name="hidden"),
                             DenseReparameterization(3, dataset_size=20, prior=prior, local_reparameterization=True,
                                                     name="output")])


def _perturb(model, seed=0):
    """Random posterior scales and prior variables (multipliers away from 1)."""
    rng = np.random.default_rng(seed)
    for layer in bayes.bayesian_layers(model):
        shape = tuple(layer.kernel.shape)
        layer.prior_variables["kernel_rho"].assign(vi.softplus_inverse(rng.uniform(0.01, 0.3, shape)))
        for name, variable in layer.prior_variables.items():
            if name not in ("kernel_rho", "kl_weight"):
                variable.assign(np.asarray(variable) + rng.normal(0, 0.3, variable.shape))


X5 = np.random.default_rng(1).normal(size=(7, 5)).astype("float32")


def test_predict_without_samples_is_the_mean_modes_softmax():
    model = _tiny()
    probs = bayes.predict(model, X5, samples=0)
    np.testing.assert_allclose(probs, keras.ops.softmax(model(X5)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bayes.predict(model, X5, samples=0, from_logits=False), model(X5), rtol=1e-5)


def test_predict_with_samples_averages_sampled_softmaxes():
    model = _tiny()
    _perturb(model)
    mean = bayes.predict(model, X5, samples=0)
    probs = bayes.predict(model, X5, samples=3)
    assert probs.shape == (7, 3) and not np.allclose(probs, mean, atol=1e-4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(probs, bayes.predict(model, X5, samples=1), atol=1e-5)  # new draws each call
    # The mean mode is back afterwards, in eager calls and in model.predict.
    assert not any(layer.sampling for layer in bayes.bayesian_layers(model))
    np.testing.assert_allclose(bayes.predict(model, X5, samples=0), mean, rtol=1e-6)


def test_sampling_is_restored_after_an_error():
    model = _tiny()
    with pytest.raises(RuntimeError):
        with bayes.sampling(model):
            assert all(layer.sampling for layer in bayes.bayesian_layers(model))
            raise RuntimeError
    assert not any(layer.sampling for layer in bayes.bayesian_layers(model))


@pytest.mark.parametrize("samples", [-1, 1.5, "3", None, True])
def test_predict_bad_samples(samples):
    with pytest.raises(ValueError, match=rf"^samples={samples!r}: must be an integer >= 0"):
        bayes.predict(_tiny(), X5, samples=samples)


def test_calibration_by_hand():
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # 5 bins of width 0.2: confidences 0.95 and 0.85 in [0.8, 1] (accuracy 1/2, confidence 0.9),
    # 0.7 in [0.6, 0.8) (accuracy 1), 0.55 in [0.4, 0.6) (accuracy 0).
    ece = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.7) + 1 / 4 * abs(0 - 0.55)
    out = bayes.calibration(probs, labels, bins=5)
    assert out["error"] == pytest.approx(0.5)
    assert out["nll"] == pytest.approx(-np.mean(np.log([0.95, 0.15, 0.7, 0.45])))
    assert out["ece"] == pytest.approx(ece)
    perfect = bayes.calibration(np.eye(3)[[0, 1, 2, 1]], [0, 1, 2, 1])
    assert perfect == {"error": 0.0, "nll": pytest.approx(0.0, abs=1e-9), "ece": 0.0}
    with pytest.raises(ValueError, match="probs has shape"):
        bayes.calibration(probs[:3], labels)


def test_calibration_matches_tensorflow_probability():
    import tensorflow_probability as tfp
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (500, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10, 500)
    labels[:300] = probs[:300].argmax(axis=1)  # 60% or more right: not all bins alike
    theirs = tfp.stats.expected_calibration_error(15, logits=logits.astype(np.float32), labels_true=labels)
    assert bayes.calibration(probs, labels)["ece"] == pytest.approx(float(theirs), abs=1e-5)


DETERMINISTIC = [priors.Normal(), priors.LogUniform(), priors.Horseshoe(), priors.SpikeAndSlab()]


@pytest.mark.parametrize("prior", DETERMINISTIC, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("name", ["lenet_300_100", "lenet5"])
def test_to_deterministic_and_compact_keep_the_mean_mode(name, prior):
    family = "flipout" if name == "lenet5" else "local_reparam"
    model = tflth.models.get_model(name, family=family, dataset_size=100, prior=prior)
    _perturb(model)
    pruning.prune(model, 0.3)
    first = pruning.prunable_layers(model)[0]  # fc1 or conv1: silence 5 of its units
    mask = np.asarray(first.mask).copy()
    mask[..., :5] = 0
    pruning.set_masks(model, {first.name: mask})
    x = np.random.default_rng(2).random((3, 28, 28, 1)).astype("float32")
    deterministic = bayes.to_deterministic(model)
    weighted = [layer for layer in deterministic.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    assert weighted and all(type(layer) in (MaskedDense, MaskedConv2D) for layer in weighted)
    for layer in weighted:
        np.testing.assert_array_equal(layer.mask, model.get_layer(layer.name).mask)
    expected = np.asarray(model(x))
    np.testing.assert_allclose(deterministic(x), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(compact.compact(model)(x), expected, rtol=1e-4, atol=1e-5)  # the same plan
    small = compact.compact(deterministic)
    assert small.get_layer(first.name).get_config()["units" if name == "lenet_300_100" else "filters"] \
        == first.kernel.shape[-1] - 5
    np.testing.assert_allclose(small(x), expected, rtol=1e-4, atol=1e-5)


def test_to_deterministic_needs_bayesian_layers():
    model = keras.Sequential([keras.Input((3,)), MaskedDense(2)])
    with pytest.raises(ValueError, match="model has no Bayesian layers"):
        bayes.to_deterministic(model)


def test_to_deterministic_replaces_bayesian_layers_in_a_nested_model():
    inner = keras.Sequential([keras.Input((3,)), DenseFlipout(2, dataset_size=10, name="inner_flipout")])
    x = keras.Input((3,))
    model = keras.Model(x, inner(x))
    _perturb(model)
    pruning.prune(model, 0.5)
    deterministic = bayes.to_deterministic(model)
    new = deterministic.layers[-1].get_layer("inner_flipout")
    assert type(new) is MaskedDense
    np.testing.assert_array_equal(new.mask, inner.get_layer("inner_flipout").mask)
    sample = np.random.default_rng(0).random((4, 3)).astype("float32")
    np.testing.assert_allclose(deterministic(sample), model(sample), rtol=1e-5, atol=1e-6)


class _Holder(keras.layers.Layer):
    """A layer of your own holding a Bayesian layer: clone_model copies it whole."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = DenseFlipout(2, dataset_size=10, name="held")

    def call(self, x):
        return self.inner(x)


def test_bayesian_layers_inside_a_layer_of_your_own_are_refused_by_name():
    x = keras.Input((3,))
    model = keras.Model(x, _Holder()(x))
    for convert in (bayes.to_deterministic, strip):
        with pytest.raises(ValueError, match=r"\['held'\] sit inside a layer of your own"):
            convert(model)


class _Record(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__()
        self.layer, self.seen = layer, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(float(self.layer.kl_weight))


def test_kl_warmup_ramps_the_kl_weight_across_fits():
    model = _tiny()
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    warmup = bayes.KLWarmup(8)
    record = _Record(model.get_layer("output"))
    y = np.arange(5) % 3
    model.fit(X5[:5], y, batch_size=1, epochs=1, verbose=0, callbacks=[warmup, record])
    assert record.seen == pytest.approx([0, 1 / 8, 2 / 8, 3 / 8, 4 / 8])
    model.fit(X5[:5], y, batch_size=1, epochs=1, verbose=0, callbacks=[warmup, record])
    assert record.seen[5:] == pytest.approx([5 / 8, 6 / 8, 7 / 8, 1, 1])
    assert all(float(layer.kl_weight) == 1 for layer in bayes.bayesian_layers(model))


def test_kl_warmup_start_and_a_rewind_after_the_ramp():
    """Rewinding restores kl_weight with the other weights (to 0, its value at the snapshot): the
    warm-up, a function of the step, puts it back at 1 on the next step."""
    model = _tiny()
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    snapshot = pruning.Snapshot(0)
    prune = pruning.PruneCallback(pruning.OneShot(5, 0.2), rewind=pruning.Rewind(snapshot), verbose=0)
    record = _Record(model.get_layer("hidden"))
    callbacks = [bayes.KLWarmup(2, start=1), snapshot, prune, record]
    model.fit(X5[:7], np.arange(7) % 3, batch_size=1, epochs=1, verbose=0, callbacks=callbacks)
    assert prune.pruned_at == [5]
    assert record.seen == pytest.approx([0, 0, 0.5, 1, 1, 0, 1])


def test_kl_warmup_is_refused_without_bayesian_layers():
    model = keras.Sequential([keras.Input((5,)), MaskedDense(3)])
    model.compile("sgd", "mse", jit_compile=False)
    with pytest.raises(ValueError, match="model has no Bayesian layers"):
        model.fit(X5, np.zeros((7, 3)), verbose=0, callbacks=[bayes.KLWarmup(5)])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=rf"^KLWarmup: iterations={bad!r} must be an integer >= 1$"):
            bayes.KLWarmup(bad)
    with pytest.raises(ValueError, match=r"^KLWarmup: start=-1 must be an integer >= 0$"):
        bayes.KLWarmup(5, start=-1)


# Uncertainty scores


def _built(layer, shape):
    return keras.Sequential([keras.Input(shape), layer])


def test_snr_and_log_alpha():
    layer = DenseFlipout(4, dataset_size=1)
    model = _built(layer, (6,))
    _perturb(model)
    pruning.prune(model, 0.25)
    mean, scale = np.asarray(layer.kernel), np.log1p(np.exp(np.asarray(layer.prior_variables["kernel_rho"])))
    np.testing.assert_allclose(scores.snr(layer), np.abs(mean) / scale, rtol=1e-5)
    kept = np.asarray(layer.mask) == 1
    np.testing.assert_allclose(scores.log_alpha(layer)[kept], np.log(mean[kept] ** 2 / scale[kept] ** 2), rtol=1e-4)
    np.testing.assert_allclose(scores.log_alpha(layer)[kept], -np.asarray(vi.log_alpha(mean, scale))[kept], rtol=1e-4)
    assert np.all(scores.log_alpha(layer)[~kept] < -100)  # pruned: mean 0, the lowest score


def test_inclusion_of_spike_and_slab_and_of_l0_gates():
    layer = DenseReparameterization(4, dataset_size=1, prior="spike_and_slab")
    _perturb(_built(layer, (6,)))
    logits = np.asarray(layer.prior_variables["inclusion_logits"])
    np.testing.assert_allclose(scores.inclusion(layer), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    for gates in ("neuron", "weight"):
        l0 = L0Dense(4, gates=gates, dataset_size=10)
        _built(l0, (6,))
        l0.log_alpha.assign(np.random.default_rng(0).normal(size=l0.log_alpha.shape))
        # P(z != 0) = sigmoid(log alpha - beta log(-gamma / zeta)) (Louizos et al. 2018, Eq. 12).
        p = 1 / (1 + np.exp(-(np.asarray(l0.log_alpha) - 2 / 3 * math.log(0.1 / 1.1))))
        np.testing.assert_allclose(scores.inclusion(l0), np.broadcast_to(p, (6, 4)), rtol=1e-5)


@pytest.mark.parametrize("cls,shape,group_axes", [
    (DenseFlipout, (6,), (1,)),              # an input neuron: a row
    (Conv2DFlipout, (5, 5, 3), (0, 1, 2)),   # a filter
])
def test_horseshoe_scale_is_constant_within_a_group(cls, shape, group_axes):
    args = (4, 2) if cls is Conv2DFlipout else (4,)
    layer = cls(*args, dataset_size=1, prior="horseshoe")
    _perturb(_built(layer, shape))
    score = scores.horseshoe_scale(layer)
    assert score.shape == tuple(layer.kernel.shape)
    rho = [np.asarray(layer.prior_variables[k]) for k in ("global_rho", "group_rho")]
    variance = 0.25 * (np.sum(np.log1p(np.exp(rho[0])) ** 2) + np.sum(np.log1p(np.exp(rho[1])) ** 2, axis=0))
    np.testing.assert_allclose(score, np.broadcast_to(1 / np.sqrt(np.expm1(variance)), score.shape), rtol=1e-4)
    np.testing.assert_array_equal(np.ptp(score, axis=group_axes), 0)
    assert np.ptp(score) > 0  # the groups differ


@pytest.mark.parametrize("prior", ["horseshoe", "spike_and_slab"])
def test_magnitude_ranks_the_deployed_weights(prior):
    """kernel times the prior's mean multiplier: a horseshoe's neuron scales count."""
    model = _tiny(prior=prior)
    _perturb(model)
    layer = model.get_layer("hidden")
    deployed = np.abs(np.asarray(layer.deterministic_weights()[0]))
    assert not np.allclose(deployed, np.abs(np.asarray(layer.kernel)))
    np.testing.assert_array_equal(scores.magnitude(layer), deployed)


SCORES = ["snr", "log_alpha", "inclusion", "horseshoe_scale"]


@pytest.mark.parametrize("score", SCORES)
def test_uncertainty_scores_name_the_layer_they_cannot_score(score):
    model = keras.Sequential([keras.Input((5,)), MaskedDense(3, name="plain_fc")])
    before = pruning.get_masks(model)
    with pytest.raises(ValueError, match=rf"score '{score}' needs .*layer 'plain_fc'") as info:
        pruning.prune(model, 0.5, score=score)
    assert "\n" not in str(info.value)
    assert all(np.array_equal(pruning.get_masks(model)[k], v) for k, v in before.items())


@pytest.mark.parametrize("score,prior", [("inclusion", "normal"), ("horseshoe_scale", "spike_and_slab")])
def test_prior_scores_need_their_prior(score, prior):
    model = keras.Sequential([keras.Input((5,)), DenseFlipout(3, dataset_size=1, prior=prior, name="b")])
    with pytest.raises(ValueError, match=rf"score '{score}' needs .*layer 'b'"):
        pruning.prune(model, 0.5, score=score)


def _log_alpha_model(log_alphas):
    """One DenseFlipout whose weights have the given log alphas (mean 1, scale exp(log alpha / 2))."""
    layer = DenseFlipout(log_alphas.shape[1], dataset_size=1, prior="log_uniform", name="b")
    model = _built(layer, (log_alphas.shape[0],))
    layer.kernel.assign(np.ones(log_alphas.shape, "float32"))
    layer.prior_variables["kernel_rho"].assign(vi.softplus_inverse(np.exp(log_alphas / 2)).astype("float32"))
    return model, layer


LOG_ALPHAS = np.array([[-5.0, 3.5, 0.0], [2.9, 4.0, 6.0], [-1.0, 3.1, 1.0], [5.0, -2.0, 2.0]])


def test_threshold_removes_exactly_the_weights_below_it():
    model, layer = _log_alpha_model(LOG_ALPHAS)
    masks = pruning.prune(model, score="log_alpha", threshold=-3)  # sparse VD: log alpha > 3 goes
    np.testing.assert_array_equal(masks["b"], (LOG_ALPHAS <= 3).astype("float32"))
    np.testing.assert_array_equal(layer.mask, LOG_ALPHAS <= 3)
    assert np.all(np.asarray(layer.kernel)[LOG_ALPHAS > 3] == 0)


def test_threshold_comes_before_the_fraction():
    model, layer = _log_alpha_model(LOG_ALPHAS)
    pruning.prune(model, 0.5, score="log_alpha", threshold=-3)
    # 7 weights pass the threshold; ceil(0.5 * 7) = 4 more go: those with log alpha 2.9, 2, 1, 0.
    np.testing.assert_array_equal(layer.mask, LOG_ALPHAS < 0)


@pytest.mark.parametrize("threshold", ["1", float("nan"), float("inf"), [1.0], True])
def test_bad_threshold(threshold):
    model, layer = _log_alpha_model(LOG_ALPHAS)
    with pytest.raises(ValueError, match=r"^threshold=.* must be a finite number"):
        pruning.prune(model, score="log_alpha", threshold=threshold)
    assert np.all(np.asarray(layer.mask) == 1)


def test_prune_callback_prunes_by_threshold_while_training():
    model, layer = _log_alpha_model(LOG_ALPHAS)
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=False)  # the scores stay put
    callback = pruning.PruneCallback(pruning.Every(2), score="log_alpha", threshold=-3, verbose=0)
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback])
    assert callback.pruned_at == [2]
    np.testing.assert_array_equal(layer.mask, LOG_ALPHAS <= 3)


def test_every_prunes_nothing_without_a_threshold():
    assert pruning.Every(3)(3) == (True, 0.0)
    model, layer = _log_alpha_model(LOG_ALPHAS)
    pruning.prune(model, pruning.Every(3)(3)[1], score="log_alpha")
    assert np.all(np.asarray(layer.mask) == 1)


def test_bayesian_layers_lists_them_in_order():
    inputs = keras.Input((6, 6, 1))
    x = Conv2DReparameterization(2, 3, dataset_size=1, name="c")(inputs)
    x = MaskedConv2D(2, 3, name="m")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, DenseFlipout(2, dataset_size=1, name="d")(x))
    assert [layer.name for layer in bayes.bayesian_layers(model)] == ["c", "d"]
    assert bayes.bayesian_layers(keras.Sequential([keras.Input((2,)), MaskedDense(1)]), required=False) == []


def test_sampling_applies_to_evaluate_too():
    model = _tiny()
    _perturb(model)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    y = np.arange(7) % 3
    mean = model.evaluate(X5, y, verbose=0)
    with bayes.sampling(model):
        sampled = [model.evaluate(X5, y, verbose=0) for _ in range(2)]
    assert sampled[0] != sampled[1] and mean not in sampled
    assert model.evaluate(X5, y, verbose=0) == pytest.approx(mean, rel=1e-6)
