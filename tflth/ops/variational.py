"""The math of mean-field Gaussian posteriors and their priors, on plain tensors.

Every KL here is KL(q || p) of one variable (elementwise; callers sum), in nats:
- Gaussian weights against a Gaussian prior (Blundell et al. 2015);
- the log-uniform prior of sparse variational dropout, through the approximation of
  Molchanov, Ashukha & Vetrov (2017), Eq. 14, with its published constants;
- log-normal scales against the Gamma(1/2) and inverse-Gamma(1/2) factors of a half-Cauchy
  (x ~ C+(0, b) iff x^2 = a * c, a ~ Gamma(1/2, rate 1 / b^2), c ~ InvGamma(1/2, 1); the
  non-centred horseshoe of Louizos, Ullrich & Welling 2017, Section 3.2);
- Bernoulli inclusion variables (the spike-and-slab of Bai, Song & Cheng 2020).
Each is checked against a Monte-Carlo estimate in the tests.
"""
import math

import numpy as np
from keras import ops

# Molchanov et al. (2017), Eq. 14: -KL ~= k1 sigmoid(k2 + k3 log alpha) - 0.5 log(1 + 1/alpha) - k1.
K1, K2, K3 = 0.63576, 1.87320, 1.48695
# log alpha is clipped to this range inside the KL only, for finite values. The authors' code clips
# to [-8, 8] (in the forward pass too), so their most certain weights get no KL gradient below -8.
LOG_ALPHA_CLIP = (-20.0, 20.0)
_HALF_LOG_2E = 0.5 * (1.0 + math.log(2.0))


def softplus_inverse(x):
    """The rho with softplus(rho) = x, for initialising a softplus scale (numpy, x > 0)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 20.0, x, np.log(np.expm1(np.minimum(x, 20.0))))


def kl_normal(mean, scale, prior_scale):
    """KL(N(mean, scale^2) || N(0, prior_scale^2))."""
    ratio = ops.square(scale / prior_scale)
    return 0.5 * (ratio + ops.square(mean / prior_scale) - 1.0 - ops.log(ratio))


def log_alpha(mean, scale, eps=1e-8):
    """log(scale^2 / mean^2): the dropout rate alpha of sparse variational dropout."""
    return 2.0 * ops.log(scale + eps) - 2.0 * ops.log(ops.abs(mean) + eps)


def kl_log_uniform(log_alpha_):
    """KL(q || log-uniform) of a weight with dropout rate alpha (Molchanov et al. 2017, Eq. 14),
    up to the constant that makes it 0 as alpha -> infinity."""
    la = ops.clip(log_alpha_, *LOG_ALPHA_CLIP)
    return K1 - K1 * ops.sigmoid(K2 + K3 * la) + 0.5 * ops.softplus(-la)


def kl_lognormal_gamma(loc, scale, rate):
    """KL(LogNormal(loc, scale^2) || Gamma(shape 1/2, rate))."""
    return rate * ops.exp(loc + 0.5 * ops.square(scale)) - 0.5 * loc - ops.log(scale) - _HALF_LOG_2E \
        - 0.5 * math.log(rate)


def kl_lognormal_inverse_gamma(loc, scale, rate):
    """KL(LogNormal(loc, scale^2) || InverseGamma(shape 1/2, rate))."""
    return rate * ops.exp(-loc + 0.5 * ops.square(scale)) + 0.5 * loc - ops.log(scale) - _HALF_LOG_2E \
        - 0.5 * math.log(rate)


def kl_bernoulli(p, prior_p, eps=1e-7):
    """KL(Bernoulli(p) || Bernoulli(prior_p))."""
    p = ops.clip(p, eps, 1.0 - eps)
    return p * ops.log(p / prior_p) + (1.0 - p) * ops.log((1.0 - p) / (1.0 - prior_p))


def relaxed_bernoulli(logits, u, temperature, eps=1e-6):
    """A binary concrete sample in (0, 1) (Maddison et al. 2017) from uniform noise `u`."""
    u = ops.clip(u, eps, 1.0 - eps)
    return ops.sigmoid((logits + ops.log(u) - ops.log(1.0 - u)) / temperature)


def signs(u):
    """Random +-1 from uniform noise (Flipout's sign flips)."""
    return ops.where(u < 0.5, -1.0, 1.0)
