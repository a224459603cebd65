"""Heavy-tailed MAP penalties: the baselines a Bayesian-sparsity study starts from.

Each penalty is -log p(w) of a sparsity prior, up to an additive constant, so that
training with `kernel_regularizer=R(strength)` finds a MAP estimate: exactly so with
strength = 1 and the data loss summed over the training set, or strength = 1/N with
Keras' mean loss over N examples. The math lives in pure functions of a tensor, `*_penalty(w, ...)`, and each class
is a thin `keras.regularizers.Regularizer` returning `strength * sum(penalty(w))`.

Priors with log-type spikes (log-uniform, log-t, horseshoe and its relatives) are
infinite at w = 0; they smooth |w| as sqrt(w^2 + epsilon), so a weight at exactly 0
has a finite value and a zero gradient.

Horseshoe+, inverse gamma-gamma and the log-scale t have no closed-form density: they
are Gaussian scale mixtures p(w) = integral N(w; 0, lam^2) p(lam) dlam, which
`scale_mixture_penalty` integrates with a fixed trapezoid rule in log(lam) (exact
enough, differentiable, and a static shape for XLA).

`tflth.priors` holds the same priors for Bayesian layers, some under the same class names
(`Horseshoe`, `LogUniform`): the same distribution used two ways, here as a penalty on point
weights (MAP), there as the prior of a variational posterior (its KL term). The module says which.
"""
import math

import keras
import numpy as np
from keras import ops

from tflth.arguments import is_number

__all__ = ["Horseshoe", "HorseshoePlus", "InverseGammaGamma", "L1", "LogScaleT", "LogT", "LogUniform", "Lp",
           "StudentT", "beta_prime_log_mixing", "horseshoe_exact_penalty", "horseshoe_penalty",
           "horseshoe_plus_penalty", "interpolate", "inverse_gamma_gamma_penalty", "l1_penalty",
           "log_scale_t_penalty", "log_t_penalty", "log_uniform_penalty", "lp_penalty", "scale_mixture_penalty",
           "student_t_penalty", "tabulate"]

_LOG_2PI = math.log(2.0 * math.pi)
# Trapezoid step in log(lam). The integrands are analytic in a strip of half-width
# about pi/4 around the real axis, so the error falls like exp(-pi^2 / (2 h))
# (Trefethen & Weideman 2014, "The exponentially convergent trapezoidal rule", SIAM
# Review 56(3)): ~1e-5 relative in p(w) at h = 1/3, with about 80 nodes per weight.
_STEP = 1.0 / 3.0
# Below lam = |w| e^-3 the Gaussian factor is < exp(-e^6 / 2) ~ 1e-88: nothing left.
_BELOW = -3.0
# Past log(lam) = (the prior's scale) + 14 the integrand e^-t q(t) is < e^-14 of its bulk.
_ABOVE = 14.0


def _check(name, value, ok, allowed):
    if not (is_number(value) and ok):  # NaN fails every comparison, but infinity passes `> 0`
        raise ValueError(f"{name}={value!r} must be a finite number{' ' + allowed if allowed else ''}")


def _smooth_abs(w, epsilon):
    return ops.sqrt(ops.square(w) + epsilon)


def scale_mixture_penalty(w, log_mixing, t_max, epsilon):
    """-log p(|w|_eps) for a Gaussian scale mixture, by quadrature in t = log(lam).

    p(w) = integral N(w; 0, e^{2t}) q(t) dt, with `log_mixing(t)` = log q(t), the log
    density of log(lam) (written with keras.ops). The grid is anchored at
    r = sqrt(w^2 + epsilon), t = log r + s, so the Gaussian factor is the same function
    of s for every weight and is written exactly (w^2 / lam^2 = e^{-2s}); it runs up to
    t = `t_max` for the smallest r (past it the mixing density must be negligible).
    A log-sum-exp keeps tiny densities (deep tails, b -> 0) from underflowing.
    """
    w = ops.convert_to_tensor(w)
    dtype = keras.backend.standardize_dtype(w.dtype)
    s = np.arange(_BELOW, t_max - 0.5 * math.log(epsilon) + _STEP / 2, _STEP)
    # log N(r; 0, e^{2t}) = -log(2 pi)/2 - t - e^{-2s}/2
    gauss = ops.convert_to_tensor(-0.5 * _LOG_2PI - 0.5 * np.exp(-2.0 * s), dtype)
    t = ops.expand_dims(ops.log(_smooth_abs(w, epsilon)), -1) + ops.convert_to_tensor(s, dtype)
    log_terms = gauss - t
    return -(ops.logsumexp(log_terms + log_mixing(t), axis=-1) + math.log(_STEP))


def beta_prime_log_mixing(a, b, scale=1.0):
    """log q(t) when (lam / scale)^2 ~ BetaPrime(b, a): density u^{b-1} (1+u)^{-a-b} / B(a, b).

    a = b = 1/2 is the half-Cauchy (the horseshoe); it is the family of Armagan, Clyde &
    Dunson (2011, "Generalized beta mixtures of Gaussians", NeurIPS).
    """
    # log u = 2 (t - log scale): the density of t is twice that of log u, u p(u).
    log_norm = math.log(2.0) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))

    def log_mixing(t):
        y = 2.0 * (t - math.log(scale))  # log u
        return log_norm + b * y - (a + b) * ops.softplus(y)
    return log_mixing


def l1_penalty(w):
    """|w|: the Laplace prior's -log density (Tibshirani 1996)."""
    return ops.abs(w)


def lp_penalty(w, p=0.5, epsilon=1e-8):
    """(w^2 + epsilon)^(p/2): |w|^p with a finite gradient at 0 (Chartrand & Yin 2008)."""
    return ops.power(ops.square(w) + epsilon, 0.5 * p)


def student_t_penalty(w, nu=1.0, scale=1.0):
    """(nu+1)/2 log(1 + w^2 / (nu scale^2)): Student-t; nu = 1 is the Cauchy."""
    return 0.5 * (nu + 1.0) * ops.log1p(ops.square(w) / (nu * scale ** 2))


def log_t_penalty(w, nu=1.0, loc=0.0, scale=1.0, epsilon=1e-8):
    """-log p(w) when log|w| ~ StudentT(nu, loc, scale): y + (nu+1)/2 log(1 + ((y-loc)/scale)^2/nu),
    y = log sqrt(w^2 + epsilon). The first term is the Jacobian d log|w| / dw = 1/|w|."""
    y = 0.5 * ops.log(ops.square(w) + epsilon)
    return y + student_t_penalty(y - loc, nu, scale)


def log_uniform_penalty(w, epsilon=1e-8):
    """0.5 log(w^2 + epsilon): the improper scale-invariant prior p(|w|) ~ 1/|w|."""
    return 0.5 * ops.log(ops.square(w) + epsilon)


def horseshoe_penalty(w, scale=1.0, epsilon=1e-8):
    """-log log(1 + 2 scale^2 / (w^2 + epsilon)): the log of the upper bound on the horseshoe
    density in Carvalho, Polson & Scott (2010), Theorem 1, constants dropped."""
    return -ops.log(ops.log1p(2.0 * scale ** 2 / (ops.square(w) + epsilon)))


def horseshoe_exact_penalty(w, scale=1.0, epsilon=1e-8):
    """The exact horseshoe: lam ~ C+(0, scale), by quadrature."""
    return scale_mixture_penalty(
        w, beta_prime_log_mixing(0.5, 0.5, scale), math.log(scale) + _ABOVE, epsilon)


def _log_x_over_sinh_x(y):
    # log(y / sinh y): even, 0 at y = 0 (a removable singularity). A series near 0 and
    # log(2|y|) - |y| - log(1 - e^{-2|y|}) elsewhere, the latter fed |y| >= 0.1 so that
    # neither branch of the `where` sees a 0/0 (whose NaN gradient `where` would keep).
    y2 = ops.square(y)
    series = y2 * (-1.0 / 6.0 + y2 / 180.0)  # next term -y^6/2835 < 4e-10 at |y| = 0.1
    ay = ops.maximum(ops.abs(y), 0.1)
    far = ops.log(2.0 * ay) - ay - ops.log(-ops.expm1(-2.0 * ay))
    return ops.where(ops.abs(y) < 0.1, series, far)


def horseshoe_plus_penalty(w, scale=1.0, epsilon=1e-8):
    """Horseshoe+: w | lam ~ N(0, lam^2), lam | eta ~ C+(0, scale eta), eta ~ C+(0, 1).

    lam / scale is a product of two standard half-Cauchys, with density
    4 log(x) / (pi^2 (x^2 - 1)); in y = log(lam / scale) that is the density
    (2 / pi^2) y / sinh(y), integrated by `scale_mixture_penalty`.
    """
    log_scale = math.log(scale)

    def log_mixing(t):
        return math.log(2.0 / math.pi ** 2) + _log_x_over_sinh_x(t - log_scale)
    return scale_mixture_penalty(w, log_mixing, log_scale + _ABOVE, epsilon)


def inverse_gamma_gamma_penalty(w, a, b, epsilon=1e-8):
    """IGG: w | lam, kappa ~ N(0, lam kappa), lam ~ IG(a, 1), kappa ~ Gamma(b, 1).

    The variance lam * kappa = kappa / (1 / lam) is a ratio of Gamma(b, 1) and
    Gamma(a, 1) variables, i.e. BetaPrime(b, a) (Bai & Ghosh 2019, Section 2).
    """
    return scale_mixture_penalty(w, beta_prime_log_mixing(a, b), _ABOVE, epsilon)


def log_scale_t_penalty(w, nu=3.0, loc=0.0, scale=1.0, epsilon=1e-8):
    """Log-scale t: w | lam ~ N(0, lam^2), log(lam) ~ StudentT(nu, loc, scale)."""
    log_norm = (math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu)
                - 0.5 * math.log(nu * math.pi) - math.log(scale))

    def log_mixing(t):
        return log_norm - student_t_penalty(t - loc, nu, scale)
    return scale_mixture_penalty(w, log_mixing, max(loc, 0.0) + _ABOVE, epsilon)


# Quadrature penalties are tabulated once, then interpolated in training: y = log sqrt(w^2 + eps)
# from its least value, log sqrt(eps), up to _TABLE_TOP (|w| ~ 3000), on _TABLE_SIZE points.
_TABLE_TOP, _TABLE_SIZE = 8.0, 4096


def tabulate(penalty, epsilon):
    """(first y, step, values, slopes) of `penalty` (a function of w) on an even grid in
    y = log sqrt(w^2 + epsilon), with its derivative in y (finite differences), in float64."""
    import tensorflow as tf  # tflth runs on TensorFlow; init_scope needs it
    start = 0.5 * math.log(epsilon)
    y = np.linspace(start, _TABLE_TOP, _TABLE_SIZE)

    def at(y):
        w = np.sqrt(np.maximum(np.exp(2.0 * y) - epsilon, 0.0))
        return np.asarray(penalty(ops.convert_to_tensor(w, "float64")), np.float64)
    with tf.init_scope():  # eagerly, also when first called while Keras traces a training step
        values, h = at(y), 1e-6
        return start, y[1] - y[0], values, (at(y + h) - values) / h  # forward: y - h is off the grid at 0


def interpolate(w, table, epsilon):
    """The tabulated penalty at `w`: cubic Hermite in y between grid points, so value and
    gradient are both accurate (beyond the top of the grid the penalty is flat)."""
    start, step, values, slopes = table
    position = ops.clip((ops.log(_smooth_abs(w, epsilon)) - start) / step, 0.0, len(values) - 1.001)
    index = ops.cast(ops.floor(position), "int32")
    t = position - ops.cast(index, position.dtype)
    v = ops.convert_to_tensor(values, position.dtype)
    d = ops.convert_to_tensor(slopes * step, position.dtype)
    v0, v1, d0, d1 = ops.take(v, index), ops.take(v, index + 1), ops.take(d, index), ops.take(d, index + 1)
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * v0 + (t3 - 2 * t2 + t) * d0 + (-2 * t3 + 3 * t2) * v1 + (t3 - t2) * d1)


class _Penalty(keras.regularizers.Regularizer):
    """strength * sum(penalty(w)). Subclasses validate their arguments, store them under
    the names in `_params`, and implement `penalty`; config and call are shared.

    Penalties computed by quadrature (`_tabulated`) cost ~80 function evaluations per weight:
    ~700 ms per training step of LeNet-300-100 on 2 CPU cores. Calling the regularizer (what
    training does) therefore interpolates a table of `penalty` made on first use (4,096 points
    in log|w|, cubic Hermite); `penalty(x)` itself stays exact."""

    _params = ()
    _tabulated = False

    def __init__(self, strength):
        _check("strength", strength, strength >= 0, ">= 0")
        self.strength = float(strength)
        self._tables = {}

    def penalty(self, x):
        raise NotImplementedError

    def _table_key(self, x):
        return None  # one table for every tensor (InverseGammaGamma's depends on its size)

    def __call__(self, x):
        x = ops.convert_to_tensor(x)
        if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
            x = ops.cast(x, "float32")  # log-sum-exp and log1p need more than 10 bits
        if not self._tabulated:
            return self.strength * ops.sum(self.penalty(x))
        key = self._table_key(x)
        if key not in self._tables:
            self._tables[key] = tabulate(lambda w: self._exact(w, key), self.epsilon)
        return self.strength * ops.sum(interpolate(x, self._tables[key], self.epsilon))

    def _exact(self, w, key):
        return self.penalty(w)

    def get_config(self):
        return {"strength": self.strength, **{k: getattr(self, k) for k in self._params}}


def _check_epsilon(epsilon):
    _check("epsilon", epsilon, epsilon > 0, "> 0")
    return float(epsilon)


def _finite(name, value):
    _check(name, value, True, "")
    return float(value)


def _check_positive(name, value):
    _check(name, value, value > 0, "> 0")
    return float(value)


@keras.saving.register_keras_serializable(package="tflth")
class L1(_Penalty):
    """|w|: the Laplace prior, whose MAP estimate is the lasso (Tibshirani 1996,
    "Regression shrinkage and selection via the lasso", JRSS B 58(1))."""

    def penalty(self, x):
        return l1_penalty(x)


@keras.saving.register_keras_serializable(package="tflth")
class Lp(_Penalty):
    """(w^2 + epsilon)^(p/2), 0 < p <= 1: bridge regression (Frank & Friedman 1993), the MAP of
    the exponential-power prior (Polson, Scott & Windle 2014, "The Bayesian bridge", JRSS B).
    Non-convex for p < 1; epsilon keeps the gradient at 0 finite, as in iteratively
    reweighted l_p (Chartrand & Yin 2008, ICASSP). p = 1 is L1 up to the smoothing."""

    _params = ("p", "epsilon")

    def __init__(self, strength, p=0.5, epsilon=1e-8):
        super().__init__(strength)
        _check("p", p, 0 < p <= 1, "in (0, 1]")
        self.p, self.epsilon = float(p), _check_epsilon(epsilon)

    def penalty(self, x):
        return lp_penalty(x, self.p, self.epsilon)


@keras.saving.register_keras_serializable(package="tflth")
class StudentT(_Penalty):
    """Student-t prior, the marginal of a Gaussian whose precision has a Gamma prior (Tipping
    2001, "Sparse Bayesian learning and the relevance vector machine", JMLR 1). nu = 1 is the
    Cauchy (Gelman et al. 2008, "A weakly informative default prior distribution for logistic
    and other regression models", Ann. Appl. Stat. 2(4))."""

    _params = ("nu", "scale")

    def __init__(self, strength, nu=1.0, scale=1.0):
        super().__init__(strength)
        self.nu, self.scale = _check_positive("nu", nu), _check_positive("scale", scale)

    def penalty(self, x):
        return student_t_penalty(x, self.nu, self.scale)


@keras.saving.register_keras_serializable(package="tflth")
class LogT(_Penalty):
    """Log-t: log|w| ~ StudentT(nu, loc, scale), a proper, heavy-tailed relative of the
    log-uniform prior (LogUniform is its scale -> infinity limit, up to a constant).

    The log-uniform is improper, which is why Neklyudov et al. (2017, "Structured Bayesian
    pruning via log-normal multiplicative noise", NeurIPS) truncate it; a t on the log scale
    keeps its spike at 0 with a proper density. The "log-t" of the shrinkage literature
    (Schmidt & Makalic 2020) puts the t on the prior's *scale* instead: see LogScaleT.
    Defaults (nu = 1, loc = 0, scale = 1) are a convention, not from a paper: with them the
    penalty still increases with |w|; when (nu + 1) > 2 scale sqrt(nu) it has a second
    minimum away from 0 (the log-scale t bump outweighs the 1/|w| Jacobian).
    """

    _params = ("nu", "loc", "scale", "epsilon")

    def __init__(self, strength, nu=1.0, loc=0.0, scale=1.0, epsilon=1e-8):
        super().__init__(strength)
        self.nu, self.scale = _check_positive("nu", nu), _check_positive("scale", scale)
        self.loc, self.epsilon = _finite("loc", loc), _check_epsilon(epsilon)

    def penalty(self, x):
        return log_t_penalty(x, self.nu, self.loc, self.scale, self.epsilon)


@keras.saving.register_keras_serializable(package="tflth")
class LogUniform(_Penalty):
    """0.5 log(w^2 + epsilon): the scale-invariant log-uniform prior p(|w|) ~ 1/|w| of variational
    dropout (Kingma, Salimans & Welling 2015, NeurIPS) and sparse variational dropout
    (Molchanov, Ashukha & Vetrov 2017, ICML), used here as a MAP penalty. Improper: its
    minimum (0.5 log epsilon, at w = 0) depends on epsilon."""

    _params = ("epsilon",)

    def __init__(self, strength, epsilon=1e-8):
        super().__init__(strength)
        self.epsilon = _check_epsilon(epsilon)

    def penalty(self, x):
        return log_uniform_penalty(x, self.epsilon)


@keras.saving.register_keras_serializable(package="tflth")
class Horseshoe(_Penalty):
    """Horseshoe prior, w | lam ~ N(0, lam^2), lam ~ C+(0, scale) (Carvalho, Polson & Scott 2010,
    "The horseshoe estimator for sparse signals", Biometrika 97(2)).

    The density has no closed form; Theorem 1 bounds it: with K = 1 / sqrt(2 pi^3),
    K/2 log(1 + 4/w^2) < p(w) < K log(1 + 2/w^2) at scale 1 (at scale tau, both sides
    take w/tau and a factor 1/tau). The default penalty is -log of the upper bound,
    constants dropped: -log log(1 + 2 scale^2 / (w^2 + epsilon)), which has the
    horseshoe's log spike at 0 and Cauchy tails. `exact=True` integrates the density
    instead (about 80 times the work per weight).
    """

    _params = ("scale", "epsilon", "exact")

    def __init__(self, strength, scale=1.0, epsilon=1e-8, exact=False):
        super().__init__(strength)
        self.scale, self.epsilon = _check_positive("scale", scale), _check_epsilon(epsilon)
        self.exact = self._tabulated = bool(exact)

    def penalty(self, x):
        fn = horseshoe_exact_penalty if self.exact else horseshoe_penalty
        return fn(x, self.scale, self.epsilon)


@keras.saving.register_keras_serializable(package="tflth")
class HorseshoePlus(_Penalty):
    """Horseshoe+ prior, lam | eta ~ C+(0, scale eta), eta ~ C+(0, 1) (Bhadra, Datta, Polson &
    Willard 2017, "The horseshoe+ estimator of ultra-sparse signals", Bayesian Analysis 12(4)):
    a sharper spike (p(w) ~ log^2(1/|w|)) than the horseshoe's, the same tails. The exact
    density, by quadrature."""

    _params = ("scale", "epsilon")
    _tabulated = True

    def __init__(self, strength, scale=1.0, epsilon=1e-8):
        super().__init__(strength)
        self.scale, self.epsilon = _check_positive("scale", scale), _check_epsilon(epsilon)

    def penalty(self, x):
        return horseshoe_plus_penalty(x, self.scale, self.epsilon)


@keras.saving.register_keras_serializable(package="tflth")
class InverseGammaGamma(_Penalty):
    """Inverse gamma-gamma prior, w ~ N(0, lam kappa), lam ~ IG(a, 1), kappa ~ Gamma(b, 1) (Bai &
    Ghosh 2019, "The inverse gamma-gamma prior for optimal posterior contraction and multiple
    hypothesis testing", JMVA 174; arXiv:1711.07635). Small b sharpens the spike at 0, a sets
    the tails (p(w) ~ |w|^{-1-2a}); a = b = 1/2 is the horseshoe. The exact density, by quadrature.

    a=None, b=None take the paper's choice for n means, a = 1/2 + 1/n, b = 1/n (also the R
    package IGG's defaults), with n the number of entries of the regularized tensor.
    """

    _params = ("a", "b", "epsilon")
    _tabulated = True

    def __init__(self, strength, a=None, b=None, epsilon=1e-8):
        super().__init__(strength)
        self.a = None if a is None else _check_positive("a", a)
        self.b = None if b is None else _check_positive("b", b)
        self.epsilon = _check_epsilon(epsilon)

    def _table_key(self, x):
        if self.a is not None and self.b is not None:
            return None
        if any(d is None for d in x.shape):
            raise ValueError(f"a=None and b=None need a tensor of known shape, got {x.shape}")
        return math.prod(x.shape)

    def _exact(self, w, n):
        a = self.a if self.a is not None else 0.5 + 1.0 / n
        b = self.b if self.b is not None else 1.0 / n
        return inverse_gamma_gamma_penalty(w, a, b, self.epsilon)

    def penalty(self, x):
        return self._exact(x, self._table_key(x))


@keras.saving.register_keras_serializable(package="tflth")
class LogScaleT(_Penalty):
    """Log-scale t prior, w | lam ~ N(0, lam^2), log(lam) ~ StudentT(nu, loc, scale) (Schmidt &
    Makalic 2020, "Log-scale shrinkage priors and adaptive Bayesian global-local shrinkage
    estimation", arXiv:1801.02321): the "log-t" prior of the shrinkage literature, which
    adapts to unknown sparsity by the spread of log(lam). nu = 3 is the bayesreg toolbox's
    default; there `scale` is learned, here it is fixed. The exact density, by quadrature."""

    _params = ("nu", "loc", "scale", "epsilon")
    _tabulated = True

    def __init__(self, strength, nu=3.0, loc=0.0, scale=1.0, epsilon=1e-8):
        super().__init__(strength)
        self.nu, self.scale = _check_positive("nu", nu), _check_positive("scale", scale)
        self.loc, self.epsilon = _finite("loc", loc), _check_epsilon(epsilon)

    def penalty(self, x):
        return log_scale_t_penalty(x, self.nu, self.loc, self.scale, self.epsilon)


# Another name for the log penalty, log|w| (the log-uniform prior's), under which users look for it.
LogPenalty = LogUniform

# The names recipes use (--penalty), for each class.
PENALTIES = {"l1": L1, "lp": Lp, "student_t": StudentT, "log_t": LogT, "log_uniform": LogUniform,
             "horseshoe": Horseshoe, "horseshoe_plus": HorseshoePlus, "igg": InverseGammaGamma,
             "log_scale_t": LogScaleT}
