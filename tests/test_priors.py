"""tflth.priors: configs, `get`, argument checks, horseshoe groups, and each prior's KL."""
import math

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from keras import ops

from tflth import priors
from tflth.layers import Conv2DFlipout, DenseFlipout
from tflth.ops import variational as vi

tfd = tfp.distributions
PRIORS = [priors.Normal(0.3), priors.LogUniform(),
          priors.Horseshoe(global_scale=1e-3, scale=2.0, group="output", scale_init=0.2),
          priors.SpikeAndSlab(inclusion=0.2, slab_scale=0.7, temperature=0.3, inclusion_init=0.6)]


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: type(p).__name__)
def test_config_round_trips(prior):
    config = keras.saving.serialize_keras_object(prior)
    assert keras.saving.deserialize_keras_object(config) == prior
    assert priors.get(config) == prior
    assert type(prior).from_config(prior.get_config()) == prior


def test_get_by_name_config_and_instance():
    for name, cls in priors.PRIORS.items():
        assert priors.get(name) == cls()
    prior = priors.Horseshoe(global_scale=0.1)
    assert priors.get(prior) is prior


@pytest.mark.parametrize("junk", ["nope", "Normal", 3, None, {"foo": 1}, {"class_name": "Nope", "config": {}},
                                  keras.saving.serialize_keras_object(keras.initializers.Zeros())])
def test_get_refuses_junk_in_one_line(junk):
    with pytest.raises(ValueError, match=r"prior=.* is not a prior; allowed: .*'normal'") as info:
        priors.get(junk)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("make,name", [
    (lambda v: priors.Normal(scale=v), "scale"),
    (lambda v: priors.Horseshoe(global_scale=v), "global_scale"),
    (lambda v: priors.Horseshoe(scale=v), "scale"),
    (lambda v: priors.Horseshoe(scale_init=v), "scale_init"),
    (lambda v: priors.SpikeAndSlab(slab_scale=v), "slab_scale"),
    (lambda v: priors.SpikeAndSlab(temperature=v), "temperature"),
])
@pytest.mark.parametrize("value", [0, -1.0, True, "1", float("nan"), float("inf")])
def test_bad_scales_are_one_line_value_errors_naming_the_argument(make, name, value):
    with pytest.raises(ValueError, match=rf"\b{name}={value!r}") as info:
        make(value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["inclusion", "inclusion_init"])
@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, True, "0.5"])
def test_bad_probabilities_name_the_argument(name, value):
    with pytest.raises(ValueError, match=rf"{name}={value!r} must be a probability") as info:
        priors.SpikeAndSlab(**{name: value})
    assert "\n" not in str(info.value)


def test_numpy_scales_are_accepted():
    prior = priors.Normal(scale=np.float32(0.5))
    assert type(prior.scale) is float and priors.get(keras.saving.serialize_keras_object(prior)).scale == 0.5


def test_bad_horseshoe_group():
    with pytest.raises(ValueError, match="group='neuron' is unknown; allowed: input, output"):
        priors.Horseshoe(group="neuron")


@pytest.mark.parametrize("group,kernel_shape,expected", [
    ("", (5, 3), (5, 1)), ("input", (5, 3), (5, 1)), ("output", (5, 3), (1, 3)),
    ("", (3, 3, 2, 4), (1, 1, 1, 4)), ("output", (3, 3, 2, 4), (1, 1, 1, 4)),
])
def test_horseshoe_groups(group, kernel_shape, expected):
    prior = priors.Horseshoe(group=group)
    assert prior.group_shape(kernel_shape) == expected
    shapes = {name: spec[0] for name, spec in prior.variables(kernel_shape).items()}
    assert shapes == {"global_loc": (2,), "global_rho": (2,), "group_loc": (2, *expected),
                      "group_rho": (2, *expected)}


def test_horseshoe_group_shapes_in_layers():
    dense = DenseFlipout(3, prior="horseshoe", dataset_size=1)
    dense(np.zeros((1, 5), "float32"))
    conv = Conv2DFlipout(4, 3, prior="horseshoe", dataset_size=1)
    conv(np.zeros((1, 5, 5, 2), "float32"))
    assert tuple(dense.mean_multiplier().shape) == (5, 1)  # input neurons
    assert tuple(conv.mean_multiplier().shape) == (1, 1, 1, 4)  # filters


def test_horseshoe_input_groups_do_not_fit_a_conv_layer():
    layer = Conv2DFlipout(4, 3, prior=priors.Horseshoe(group="input"), dataset_size=1, name="c")
    with pytest.raises(ValueError, match=r"group='input'.* conv layer 'c'.*group='output'") as info:
        layer(np.zeros((1, 5, 5, 2), "float32"))
    assert "\n" not in str(info.value)


def _variables(prior, kernel_shape):
    """The prior's variables at their initial values, as tensors."""
    return {name: ops.convert_to_tensor(init(shape, "float32"))
            for name, (shape, init, *_) in prior.variables(kernel_shape).items()}


@pytest.mark.parametrize("scale_init", [0.1, 0.5])
def test_horseshoe_starts_with_multiplier_one(scale_init):
    """s * z = 1 at the posterior medians; E[s z] = exp(var / 2) with var = scale_init^2 (a quarter of
    four log-variances)."""
    prior = priors.Horseshoe(scale_init=scale_init)
    v = _variables(prior, (6, 3))
    side, sampled = prior.example_multiplier(v, 4000, keras.random.SeedGenerator(0))
    assert side == "input" and tuple(sampled.shape) == (4000, 6)
    np.testing.assert_allclose(np.median(sampled, axis=0), np.ones(6), atol=0.02)
    np.testing.assert_allclose(prior.mean_multiplier(v), np.full((6, 1), math.exp(scale_init ** 2 / 2)), rtol=1e-5)
    # s_a starts at its prior's scale: log s_a = 2 log b.
    assert float(v["global_loc"][0]) == pytest.approx(2 * math.log(prior.global_scale), rel=1e-6)


def test_horseshoe_mean_multiplier_is_the_mean_of_the_sampled_ones():
    """Each example draws its own s z_g, with mean E[s z_g] and median exp((log s_a + log s_b +
    log a + log b) / 2)."""
    prior = priors.Horseshoe()
    v = _variables(prior, (3, 2))
    v["global_rho"] = ops.convert_to_tensor(vi.softplus_inverse([1e-4, 1e-4]), "float32")  # s ~ fixed
    v["group_loc"] = ops.convert_to_tensor(np.full((2, 3, 1), [[[0.3]], [[-0.5]]]), "float32")
    v["group_rho"] = ops.convert_to_tensor(np.full((2, 3, 1), vi.softplus_inverse(0.6)), "float32")
    side, sampled = prior.example_multiplier(v, 40_000, keras.random.SeedGenerator(0))
    sampled = np.asarray(sampled)
    assert side == "input" and sampled.shape == (40_000, 3)
    assert sampled.std(axis=0).min() > 0.2  # really sampled, per example
    np.testing.assert_allclose(sampled.mean(axis=0), np.asarray(prior.mean_multiplier(v))[:, 0], rtol=0.02)
    np.testing.assert_allclose(np.median(sampled, axis=0), np.full(3, math.exp(-0.1)), rtol=0.02)


def test_horseshoe_max_weight_scale_must_be_positive():
    with pytest.raises(ValueError, match="max_weight_scale=0 must be a finite number > 0"):
        priors.Horseshoe(max_weight_scale=0)


def _random_posterior(prior, kernel_shape, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 0.5, kernel_shape).astype("float32")
    scale = rng.uniform(0.01, 1.0, kernel_shape).astype("float32")
    v = _variables(prior, kernel_shape)
    for name in v:
        if name != "kl_weight":
            v[name] = ops.convert_to_tensor(np.asarray(v[name]) + rng.normal(0, 0.5, v[name].shape), "float32")
    return ops.convert_to_tensor(mean), ops.convert_to_tensor(scale), v


def _independent_weight_kl(prior, mean, scale, v):
    """Each weight's KL computed with TFP, independently of tflth.ops.variational."""
    mean, scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
    q = tfd.Normal(mean, scale)
    if isinstance(prior, priors.Normal):
        return np.asarray(tfd.kl_divergence(q, tfd.Normal(np.float64(0), np.float64(prior.scale))))
    if isinstance(prior, priors.Horseshoe):  # w~ ~ N(0, 1)
        return np.asarray(tfd.kl_divergence(q, tfd.Normal(np.float64(0), np.float64(1))))
    if isinstance(prior, priors.SpikeAndSlab):
        p = 1 / (1 + np.exp(-np.asarray(v["inclusion_logits"], np.float64)))
        prior_p = np.float64(prior.inclusion)
        bernoulli = tfd.kl_divergence(tfd.Bernoulli(probs=p), tfd.Bernoulli(probs=prior_p))
        slab = tfd.kl_divergence(q, tfd.Normal(np.float64(0), np.float64(prior.slab_scale)))
        return np.asarray(bernoulli) + p * np.asarray(slab)
    la = np.log(scale ** 2 / mean ** 2)  # LogUniform: Eq. 14
    return 0.63576 - 0.63576 / (1 + np.exp(-(1.87320 + 1.48695 * la))) + 0.5 * np.log1p(np.exp(-la))


def _hyper_kl(prior, v):
    """The KL of a horseshoe's scales, each with its prior's rate (global: 1 / global_scale^2)."""
    if not isinstance(prior, priors.Horseshoe):
        return 0.0
    sp = lambda x: np.log1p(np.exp(np.asarray(x, np.float64)))  # noqa: E731
    g_loc, g_scale = np.asarray(v["global_loc"], np.float64), sp(v["global_rho"])
    z_loc, z_scale = np.asarray(v["group_loc"], np.float64), sp(v["group_rho"])
    return float(vi.kl_lognormal_gamma(g_loc[0], g_scale[0], prior.global_scale ** -2)
                 + vi.kl_lognormal_inverse_gamma(g_loc[1], g_scale[1], 1.0)
                 + np.sum(vi.kl_lognormal_gamma(z_loc[0], z_scale[0], prior.scale ** -2))
                 + np.sum(vi.kl_lognormal_inverse_gamma(z_loc[1], z_scale[1], 1.0)))


ALL = [priors.Normal(), priors.Normal(0.3), priors.LogUniform(), priors.Horseshoe(),
       priors.Horseshoe(global_scale=0.1, scale=2.0, group="output"), priors.SpikeAndSlab(),
       priors.SpikeAndSlab(inclusion=0.1, slab_scale=2.0)]


@pytest.mark.parametrize("prior", ALL, ids=repr)
@pytest.mark.parametrize("kernel_shape", [(7, 4), (3, 3, 2, 4)])
def test_kl_sums_the_unpruned_weights_and_the_hyper_terms(prior, kernel_shape):
    mean, scale, v = _random_posterior(prior, kernel_shape)
    mask = (np.random.default_rng(1).random(kernel_shape) < 0.6).astype("float32")
    per_weight = _independent_weight_kl(prior, mean, scale, v)
    expected = float(per_weight[mask == 1].sum()) + _hyper_kl(prior, v)
    kl = float(prior.kl(mean, scale, ops.convert_to_tensor(mask), v))
    assert kl == pytest.approx(expected, rel=1e-4, abs=1e-3)
    # A pruned weight's parameters do not matter.
    mean2 = np.where(mask == 1, np.asarray(mean), 123.0).astype("float32")
    assert float(prior.kl(ops.convert_to_tensor(mean2), scale, ops.convert_to_tensor(mask), v)) == pytest.approx(kl)


@pytest.mark.parametrize("prior", ALL, ids=repr)
def test_kl_is_finite_and_non_negative(prior):
    for seed in range(3):
        mean, scale, v = _random_posterior(prior, (6, 5), seed)
        kl = np.asarray(prior.kl(mean, scale, ops.ones((6, 5)), v))
        assert np.isfinite(kl) and kl >= 0
    # Extremes: a zero mean (a pruned-looking weight), tiny and large scales.
    mean = ops.convert_to_tensor(np.array([[0.0, 1e-6, 5.0]], "float32"))
    scale = ops.convert_to_tensor(np.array([[1e-6, 10.0, 1e-3]], "float32"))
    _, _, v = _random_posterior(prior, (1, 3))
    kl = float(prior.kl(mean, scale, ops.ones((1, 3)), v))
    assert np.isfinite(kl) and kl >= 0
    assert np.isfinite(np.asarray(prior.kl(mean, scale, ops.zeros((1, 3)), v)))


def test_horseshoe_kl_with_everything_pruned_is_the_hyper_terms():
    prior = priors.Horseshoe()
    mean, scale, v = _random_posterior(prior, (5, 3))
    assert float(prior.kl(mean, scale, ops.zeros((5, 3)), v)) == pytest.approx(_hyper_kl(prior, v), rel=1e-5)
    assert _hyper_kl(prior, v) > 0


def test_registered_names_are_the_priors_own():
    """tflth.regularizers has a LogUniform and a Horseshoe penalty too: each name loads its own class."""
    import tflth.regularizers  # noqa: F401

    for cls in priors.PRIORS.values():
        assert keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is cls
