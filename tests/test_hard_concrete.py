"""The hard-concrete gate math against closed forms and Monte-Carlo estimates."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tflth.ops import hard_concrete as hc

LOG_ALPHAS = np.array([-3.0, -1.0, 0.0, 0.7, 2.5], np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _samples(log_alpha, n=200_000, seed=0, **kw):
    u = np.random.default_rng(seed).random((n, log_alpha.size)).astype(np.float32)
    return np.asarray(hc.sample(log_alpha[None, :], u, **kw))


@pytest.mark.parametrize("beta,gamma,zeta", [(2 / 3, -0.1, 1.1), (0.5, -0.2, 1.05)])
def test_monte_carlo_matches_the_closed_forms(beta, gamma, zeta):
    z = _samples(LOG_ALPHAS, beta=beta, gamma=gamma, zeta=zeta)
    assert z.min() == 0.0 and z.max() == 1.0  # the stretch puts mass exactly on 0 and 1
    # P(z > 0) = 1 - Q(0) and P(z = 1) = 1 - Q(1), Q the CDF of the stretched concrete (paper, Appendix).
    p_nonzero = _sigmoid(LOG_ALPHAS - beta * np.log(-gamma / zeta))
    p_one = _sigmoid(LOG_ALPHAS - beta * np.log((1 - gamma) / (zeta - 1)))
    np.testing.assert_allclose((z > 0).mean(0), p_nonzero, atol=4e-3)
    np.testing.assert_allclose((z == 1).mean(0), p_one, atol=4e-3)
    np.testing.assert_allclose(np.asarray(hc.prob_nonzero(LOG_ALPHAS, beta, gamma, zeta)), p_nonzero, rtol=1e-5)


def test_deterministic_gate_is_the_papers_estimator():
    expected = np.clip(_sigmoid(LOG_ALPHAS) * 1.2 - 0.1, 0, 1)
    np.testing.assert_allclose(np.asarray(hc.deterministic(LOG_ALPHAS)), expected, rtol=1e-6)
    assert float(hc.deterministic(np.float32(-4.0))) == 0.0 and float(hc.deterministic(np.float32(4.0))) == 1.0


def test_expected_l0_counts_group_sizes_and_has_a_gradient():
    log_alpha = tf.Variable(LOG_ALPHAS)
    sizes = np.array([1, 2, 3, 4, 5], np.float32)
    with tf.GradientTape() as tape:
        value = hc.expected_l0(log_alpha, sizes)
    p = _sigmoid(LOG_ALPHAS - (2 / 3) * math.log(0.1 / 1.1))
    np.testing.assert_allclose(float(value), float((p * sizes).sum()), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(value, log_alpha).numpy(), sizes * p * (1 - p), rtol=1e-4)


def test_samples_are_finite_at_the_edges_of_the_noise():
    z = np.asarray(hc.sample(np.zeros(3, np.float32), np.array([0.0, 0.5, 1.0], np.float32)))
    np.testing.assert_array_equal(z, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("kw,name", [(dict(beta=1.0), "beta"), (dict(beta=0.0), "beta"), (dict(gamma=0.0), "gamma"),
                                     (dict(zeta=1.0), "zeta")])
def test_bad_parameters_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        hc.check_params(**kw)


@pytest.mark.parametrize("droprate", [0.0, 1.0, -0.1])
def test_droprate_out_of_range(droprate):
    with pytest.raises(ValueError, match="droprate_init"):
        hc.log_alpha_for_droprate(droprate)
