"""tflth.ops.variational: every KL against a Monte-Carlo estimate with TFP's distributions."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from tflth.ops import variational as vi

tfd = tfp.distributions
N = 400_000  # samples per Monte-Carlo estimate: standard errors of a few 1e-3 nats


def _mc_kl(q, p, seed):
    """E_q[log q - log p] and its standard error, in float64."""
    x = q.sample(N, seed=seed)
    log_ratio = np.asarray(q.log_prob(x) - p.log_prob(x), dtype=np.float64)
    return log_ratio.mean(), log_ratio.std() / math.sqrt(N)


def _assert_close_to_mc(analytic, mc, se):
    # 5 standard errors, and the estimate precise enough to see a wrong constant (the
    # 0.5 log 2 ~ 0.35 or 0.5 of the entropy, a rate where 1 / rate belongs).
    assert se < 0.01
    assert abs(float(analytic) - mc) < 5 * se + 1e-4, (float(analytic), mc, se)


@pytest.mark.parametrize("mean,scale,prior_scale", [(0.3, 0.2, 1.0), (-1.5, 0.05, 0.5), (0.0, 2.0, 1.0)])
def test_kl_normal(mean, scale, prior_scale):
    q, p = tfd.Normal(np.float64(mean), np.float64(scale)), tfd.Normal(np.float64(0), np.float64(prior_scale))
    mc, se = _mc_kl(q, p, seed=(1, 0))
    _assert_close_to_mc(vi.kl_normal(mean, scale, prior_scale), mc, se)
    np.testing.assert_allclose(vi.kl_normal(mean, scale, prior_scale), tfd.kl_divergence(q, p), rtol=1e-6)


@pytest.mark.parametrize("loc,scale,rate", [(-2.0, 0.3, 1.0), (-1.0, 0.6, 3.0), (-23.0, 0.1, 1e10)])
def test_kl_lognormal_gamma(loc, scale, rate):
    """Gamma(shape 1/2, rate): rate 1e10 is the horseshoe's global scale 1e-5 (rate 1 / b^2)."""
    q = tfd.LogNormal(np.float64(loc), np.float64(scale))
    p = tfd.Gamma(concentration=np.float64(0.5), rate=np.float64(rate))
    mc, se = _mc_kl(q, p, seed=(2, 0))
    _assert_close_to_mc(vi.kl_lognormal_gamma(np.float64(loc), np.float64(scale), rate), mc, se)


@pytest.mark.parametrize("loc,scale,rate", [(1.0, 0.3, 1.0), (0.5, 0.6, 0.5), (23.0, 0.1, 1.0)])
def test_kl_lognormal_inverse_gamma(loc, scale, rate):
    q = tfd.LogNormal(np.float64(loc), np.float64(scale))
    p = tfd.InverseGamma(concentration=np.float64(0.5), scale=np.float64(rate))
    mc, se = _mc_kl(q, p, seed=(3, 0))
    _assert_close_to_mc(vi.kl_lognormal_inverse_gamma(np.float64(loc), np.float64(scale), rate), mc, se)


@pytest.mark.parametrize("p,prior_p", [(0.9, 0.5), (0.1, 0.3), (0.5, 0.5), (0.999, 0.01)])
def test_kl_bernoulli(p, prior_p):
    q, prior = tfd.Bernoulli(probs=np.float64(p)), tfd.Bernoulli(probs=np.float64(prior_p))
    mc, se = _mc_kl(q, prior, seed=(4, 0))
    _assert_close_to_mc(vi.kl_bernoulli(np.float64(p), prior_p), mc, max(se, 1e-12))
    exact = sum(float(q.prob(x)) * float(q.log_prob(x) - prior.log_prob(x)) for x in (0, 1))
    np.testing.assert_allclose(vi.kl_bernoulli(np.float64(p), prior_p), exact, rtol=1e-6, atol=1e-12)


def test_log_alpha_is_log_of_variance_over_squared_mean():
    mean, scale = np.array([0.5, -2.0, 1e-3]), np.array([0.1, 3.0, 1.0])
    np.testing.assert_allclose(vi.log_alpha(mean, scale), np.log(scale ** 2 / mean ** 2), rtol=1e-5)


PAPER = dict(k1=0.63576, k2=1.87320, k3=1.48695)  # Molchanov et al. 2017, Eq. 14


def _paper_kl(la):
    k1, k2, k3 = PAPER["k1"], PAPER["k2"], PAPER["k3"]
    return -(k1 / (1 + np.exp(-(k2 + k3 * la))) - 0.5 * np.log1p(np.exp(-la)) - k1)


def test_kl_log_uniform_is_the_papers_approximation():
    la = np.array([-8.0, -3.0, -1.0, 0.0, 0.5, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(vi.kl_log_uniform(la), _paper_kl(la), rtol=1e-6, atol=1e-7)


def test_kl_log_uniform_vanishes_for_large_alpha_and_decreases():
    la = np.linspace(-10.0, 30.0, 401)
    kl = np.asarray(vi.kl_log_uniform(la))
    assert np.all(np.diff(kl) <= 0) and np.all(np.diff(kl)[la[1:] < 15] < 0)
    assert kl[-1] == pytest.approx(0.0, abs=1e-6) and kl[la.searchsorted(8.0)] < 1e-3
    assert np.all(kl > 0) and np.all(np.isfinite(kl))
    assert np.isfinite(vi.kl_log_uniform(np.array([-1e4, 1e4]))).all()  # clipped, not overflowed


def test_kl_log_uniform_matches_the_exact_kl_up_to_its_constant():
    """For q = N(theta, alpha theta^2) against p(|w|) ~ 1 / |w|, KL(alpha) - KL(infinity) =
    E log|alpha^(-1/2) + n| - E log|n| with n ~ N(0, 1), and E log|n| = -(euler_gamma + log 2) / 2.
    The paper fits this within about 0.01 nats."""
    n = np.asarray(tfd.Normal(np.float64(0), np.float64(1)).sample(2_000_000, seed=(5, 0)))
    e_log_n = -(np.euler_gamma + math.log(2.0)) / 2
    for la in (-4.0, -2.0, 0.0, 1.0, 3.0):
        exact = np.mean(np.log(np.abs(math.exp(-la / 2) + n))) - e_log_n
        assert float(vi.kl_log_uniform(np.float64(la))) == pytest.approx(exact, abs=0.02), la


@pytest.mark.parametrize("b", [1.0, 3.0, 1e-5])
def test_gamma_times_inverse_gamma_is_a_squared_half_cauchy(b):
    """sqrt(a c), a ~ Gamma(1/2, rate 1 / b^2), c ~ InvGamma(1/2, 1): half-Cauchy(0, b), whose
    quantile q is b tan(pi q / 2) (the median is b)."""
    a = tfd.Gamma(concentration=np.float64(0.5), rate=np.float64(b ** -2)).sample(300_000, seed=(6, 0))
    c = tfd.InverseGamma(concentration=np.float64(0.5), scale=np.float64(1.0)).sample(300_000, seed=(7, 0))
    x = np.sqrt(np.asarray(a) * np.asarray(c))
    for q in (0.25, 0.5, 0.75, 0.9):
        assert np.quantile(x, q) == pytest.approx(b * math.tan(math.pi * q / 2), rel=0.03), q


def test_softplus_inverse_round_trips():
    x = np.array([1e-8, 1e-3, vi.math.exp(-5), 0.5, 1.0, 19.9, 20.0, 25.0, 1e3])
    rho = vi.softplus_inverse(x)
    np.testing.assert_allclose(np.asarray(ops.softplus(tf.constant(rho))), x, rtol=1e-6)
    assert vi.softplus_inverse(0.1).shape == ()  # a scalar stays a scalar (float() of it works)


def test_relaxed_bernoulli_is_in_the_unit_interval_with_the_right_mean():
    u = np.asarray(tfd.Uniform(np.float32(0), np.float32(1)).sample(200_000, seed=(8, 0)))
    for logit in (-2.0, 0.0, 1.5):
        x = np.asarray(vi.relaxed_bernoulli(np.float32(logit), u, 0.5))
        # In (0, 1) in exact arithmetic; float32's sigmoid rounds to 1 beyond ~17 (u > 1 - 1e-4 here).
        assert np.all((x > 0) & (x <= 1)) and np.mean(x == 1) < 2e-3
        # The binary concrete rounds to Bernoulli(sigmoid(logit)) at any temperature...
        assert np.mean(x > 0.5) == pytest.approx(1 / (1 + math.exp(-logit)), abs=0.005)
        # ... and its mean tends to that as the temperature goes to 0.
        cold = np.asarray(vi.relaxed_bernoulli(np.float32(logit), u, 0.02))
        assert cold.mean() == pytest.approx(1 / (1 + math.exp(-logit)), abs=0.01)
    assert np.mean(np.asarray(vi.relaxed_bernoulli(np.float32(0.0), u, 0.5))) == pytest.approx(0.5, abs=0.005)
    # u at the ends of [0, 1) does not give log(0).
    assert np.all(np.isfinite(vi.relaxed_bernoulli(np.float32(0.0), np.array([0.0, 1.0], "float32"), 0.5)))


def test_signs_are_plus_or_minus_one_and_balanced():
    u = np.asarray(tfd.Uniform(np.float32(0), np.float32(1)).sample(100_000, seed=(9, 0)))
    s = np.asarray(vi.signs(u))
    assert set(np.unique(s)) == {-1.0, 1.0}
    assert s.mean() == pytest.approx(0.0, abs=0.02)
    np.testing.assert_array_equal(vi.signs(np.array([0.0, 0.49, 0.5, 0.99], "float32")), [-1, -1, 1, 1])


def _draw(kind, shape, seed, xla):
    """tflth.ops.noise's `kind` draw, eagerly (Philox) or inside an XLA-compiled function (ThreeFry)."""
    from tflth.ops import noise
    draw = lambda: getattr(noise, kind)(shape, seed)  # noqa: E731
    return np.asarray(tf.function(draw, jit_compile=True)() if xla else draw(), dtype=np.float64)


def _kolmogorov_smirnov(sorted_x, cdf):
    """The KS statistic of a sorted sample against a continuous CDF (values at the sample)."""
    n = len(sorted_x)
    return max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))


@pytest.mark.parametrize("xla", [False, True], ids=["philox", "xla_threefry"])
def test_noise_normal_is_standard_normal_and_reproducible(xla):
    """The inverse-CDF normals, with and without XLA (another generator): N(0, 1) quantiles, moments
    and a Kolmogorov-Smirnov test on a million draws, finite, the same draws for the same seed."""
    x = np.sort(_draw("normal", (1_000_000,), 3, xla))
    assert abs(x.mean()) < 0.005 and abs(x.std() - 1) < 0.005
    assert np.all(np.isfinite(x)) and x.max() < 5.5 and x.min() > -5.5
    normal = tfd.Normal(np.float64(0.0), np.float64(1.0))
    for q in (0.001, 0.025, 0.16, 0.5, 0.84, 0.975, 0.999):
        z = float(normal.quantile(q))
        se = math.sqrt(q * (1 - q) / len(x)) / float(normal.prob(z))  # of the sample quantile
        assert x[int(q * len(x))] == pytest.approx(z, abs=5 * se)
    # 1.95 / sqrt(n): the KS test's critical value at the 0.1% level; float32's 2^-23 steps in u
    # move the CDF by far less than 1 / sqrt(n)
    assert _kolmogorov_smirnov(x, np.asarray(normal.cdf(x))) < 1.95 / math.sqrt(len(x))
    np.testing.assert_array_equal(_draw("normal", (5,), 7, xla), _draw("normal", (5,), 7, xla))


@pytest.mark.parametrize("xla", [False, True], ids=["philox", "xla_threefry"])
def test_noise_uniform_is_uniform_and_traced_under_xla_with_threefry(xla):
    """U[0, 1) by moments and the KS test, with and without XLA; tflth.ops.noise knows which it is
    tracing for (it names the generator by that: Philox that XLA recomputes in every fusion costs
    an L0 weight-gate step 2.5x)."""
    from tflth import internals
    u = np.sort(_draw("uniform", (1_000_000,), 5, xla))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.001 and abs(u.var() - 1 / 12) < 0.001
    assert _kolmogorov_smirnov(u, u) < 1.95 / math.sqrt(len(u))
    if xla:  # the draw is ThreeFry's, not Philox's, and a generator's successive draws differ
        from tflth.ops import noise
        threefry = tf.function(lambda: tf.random.stateless_uniform((1000,), seed=[5, 0], alg="threefry"), jit_compile=True)
        np.testing.assert_array_equal(threefry(), _draw("uniform", (1000,), 5, True))
        assert not np.array_equal(_draw("uniform", (1000,), 5, True), _draw("uniform", (1000,), 5, False))
        generator = keras.random.SeedGenerator(3)
        two = tf.function(lambda: tf.stack([noise.uniform((100_000,), generator) for _ in range(2)]), jit_compile=True)()
        assert abs(np.corrcoef(np.asarray(two))[0, 1]) < 0.01
    assert not internals.xla_compiling()
    assert bool(tf.function(lambda: tf.constant(internals.xla_compiling()), jit_compile=True)())
    assert not bool(tf.function(lambda: tf.constant(internals.xla_compiling()))())
