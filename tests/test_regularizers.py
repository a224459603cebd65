"""tflth.regularizers: values and gradients against densities written out in numpy,
heavy tails, configs, and use inside a compiled, saved and reloaded Keras model."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflth import regularizers as R

EPS = 1e-8
K_HS = 1.0 / math.sqrt(2.0 * math.pi ** 3)  # Carvalho, Polson & Scott (2010), Theorem 1


def _t_pdf(z, nu, scale):
    c = math.gamma((nu + 1) / 2) / (math.gamma(nu / 2) * math.sqrt(nu * math.pi) * scale)
    return c * (1.0 + (z / scale) ** 2 / nu) ** (-(nu + 1) / 2)


def _mixture_pdf(r, lam_pdf):
    """integral N(r; 0, lam^2) lam_pdf(lam) dlam, by a fine trapezoid in log(lam)."""
    lam = np.exp(np.linspace(-40.0, 40.0, 200_000))
    out = [np.trapezoid(np.exp(-0.5 * (ri / lam) ** 2) / (math.sqrt(2 * math.pi) * lam)
                        * lam_pdf(lam) * lam, np.log(lam)) for ri in np.atleast_1d(r)]
    return np.array(out)


def _hs_lam(s):
    return lambda lam: 2.0 / (math.pi * s * (1.0 + (lam / s) ** 2))


def _hs_plus_lam(s):  # the density of s * (a product of two standard half-Cauchys)
    return lambda lam: 4.0 * np.log(lam / s) / (math.pi ** 2 * s * ((lam / s) ** 2 - 1.0))


def _igg_lam(a, b):  # lam^2 = variance ~ BetaPrime(b, a); p(lam) = p_u(lam^2) 2 lam
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return lambda lam: np.exp((b - 1) * np.log(lam ** 2) - (a + b) * np.log1p(lam ** 2)
                              - log_beta) * 2.0 * lam


def _log_t_lam(nu, loc, scale):
    return lambda lam: _t_pdf(np.log(lam) - loc, nu, scale) / lam


# (regularizer, -log density of r = sqrt(w^2 + EPS) in numpy, normalised?)
CASES = [
    (R.L1(1.0), lambda r: -np.log(0.5 * np.exp(-np.sqrt(r ** 2 - EPS))), False),
    (R.Lp(1.0), lambda r: np.sqrt(r), False),
    (R.Lp(1.0, p=0.3, epsilon=1e-4), lambda r: -np.log(np.exp(-(r ** 2 - EPS + 1e-4) ** 0.15)), False),
    (R.StudentT(1.0), lambda r: -np.log(1.0 / (math.pi * (1.0 + r ** 2 - EPS))), False),
    (R.StudentT(1.0, nu=4.0, scale=0.5), lambda r: -np.log(_t_pdf(np.sqrt(r ** 2 - EPS), 4.0, 0.5)), False),
    (R.LogT(1.0), lambda r: -np.log(_t_pdf(np.log(r), 1.0, 1.0) / (2 * r)), False),
    (R.LogT(1.0, nu=3.0, loc=-2.0, scale=0.5),
     lambda r: -np.log(_t_pdf(np.log(r) + 2.0, 3.0, 0.5) / (2 * r)), False),
    (R.LogUniform(1.0), lambda r: -np.log(1.0 / r), False),
    (R.Horseshoe(1.0, scale=0.3), lambda r: -np.log(K_HS / 0.3 * np.log1p(2 * 0.09 / r ** 2)), False),
    (R.Horseshoe(1.0, scale=0.3, exact=True), lambda r: -np.log(_mixture_pdf(r, _hs_lam(0.3))), True),
    (R.HorseshoePlus(1.0), lambda r: -np.log(_mixture_pdf(r, _hs_plus_lam(1.0))), True),
    (R.HorseshoePlus(1.0, scale=0.05), lambda r: -np.log(_mixture_pdf(r, _hs_plus_lam(0.05))), True),
    (R.InverseGammaGamma(1.0, a=0.6, b=0.1), lambda r: -np.log(_mixture_pdf(r, _igg_lam(0.6, 0.1))), True),
    (R.InverseGammaGamma(1.0, a=0.5 + 1e-4, b=1e-4),
     lambda r: -np.log(_mixture_pdf(r, _igg_lam(0.5 + 1e-4, 1e-4))), True),
    (R.LogScaleT(1.0), lambda r: -np.log(_mixture_pdf(r, _log_t_lam(3.0, 0.0, 1.0))), True),
    (R.LogScaleT(1.0, nu=1.0, loc=-3.0, scale=2.0),
     lambda r: -np.log(_mixture_pdf(r, _log_t_lam(1.0, -3.0, 2.0))), True),
]
IDS = [f"{type(r).__name__}-{i}" for i, (r, _, _) in enumerate(CASES)]
# One default instance of every class (IGG with a, b given: its default needs a tensor size).
DEFAULTS = [R.L1(1.0), R.Lp(1.0), R.StudentT(1.0), R.LogT(1.0), R.LogUniform(1.0),
            R.Horseshoe(1.0), R.Horseshoe(1.0, exact=True), R.HorseshoePlus(1.0),
            R.InverseGammaGamma(1.0, a=0.5 + 1e-3, b=1e-3), R.LogScaleT(1.0)]
DEFAULT_IDS = [f"{type(r).__name__}-{i}" for i, r in enumerate(DEFAULTS)]

W = np.array([-3.0, -0.7, -0.05, 0.0, 1e-3, 0.2, 1.0, 2.5, 10.0])  # 0: the smoothed spike


def _values(reg, w, dtype="float32"):
    """The elementwise penalty of `reg` at each w, through its public __call__."""
    return np.array([float(reg(np.array([wi], dtype))) for wi in w])


@pytest.mark.parametrize("reg,neg_log_pdf,normalised", CASES, ids=IDS)
def test_values_match_the_density(reg, neg_log_pdf, normalised):
    got = _values(reg, W)
    want = neg_log_pdf(np.sqrt(W ** 2 + EPS))
    if not normalised:  # a penalty is -log p up to a constant: compare differences
        got, want = got - got[-3], want - want[-3]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("reg,neg_log_pdf,normalised", CASES, ids=IDS)
def test_gradient_matches_finite_difference_of_the_density(reg, neg_log_pdf, normalised):
    w = tf.Variable(W[np.abs(W) > 0.01] * 1.1, dtype="float64")  # finite differences need |w| >> h
    strength = 0.7
    scaled = type(reg).from_config({**reg.get_config(), "strength": strength})
    with tf.GradientTape() as tape:
        loss = scaled(w)
    got = tape.gradient(loss, w).numpy()
    h, wn = 1e-5, w.numpy()
    fd = (neg_log_pdf(np.sqrt((wn + h) ** 2 + EPS)) - neg_log_pdf(np.sqrt((wn - h) ** 2 + EPS))) / (2 * h)
    np.testing.assert_allclose(got, strength * fd, rtol=1e-4, atol=1e-6)


def test_strength_scales_the_summed_penalty():
    w = np.array([[0.3, -1.2], [2.0, 0.0]], "float32")
    np.testing.assert_allclose(float(R.StudentT(0.25, nu=2.0)(w)),
                               0.25 * np.sum(1.5 * np.log1p(w ** 2 / 2.0)), rtol=1e-6)
    assert float(R.HorseshoePlus(0.0)(w)) == 0.0


@pytest.mark.parametrize("reg", DEFAULTS, ids=DEFAULT_IDS)
def test_heavy_tails_symmetry_and_minimum_at_zero(reg):
    up, down = _values(reg, [1.0, 10.0]), _values(reg, [-1.0, -10.0])
    assert up[1] - up[0] < 0.5 * (10.0 ** 2 - 1.0)  # slower than L2 (a Gaussian prior)
    np.testing.assert_allclose(up, down, rtol=1e-6)
    grid = _values(reg, [0.0, 1e-5, 1e-3, 0.02, 0.1, 0.5, 1.0, 4.0, 30.0])
    assert np.all(np.diff(grid) >= -1e-5), grid  # increases with |w|: the mode is w = 0


def test_horseshoe_quadrature_lies_within_theorem_1_bounds():
    for tau in (1.0, 0.3):
        w = np.array([1e-3, 0.1, 1.0, 3.0, 10.0])
        p = np.exp(-R.horseshoe_exact_penalty(w, tau, EPS).numpy())
        lower = K_HS / (2 * tau) * np.log1p(4 * tau ** 2 / w ** 2)
        upper = K_HS / tau * np.log1p(2 * tau ** 2 / w ** 2)
        assert np.all(lower < p) and np.all(p < upper)


def test_inverse_gamma_gamma_at_a_b_one_half_is_the_horseshoe():
    w = np.array([1e-4, 0.1, 1.0, 7.0])
    np.testing.assert_allclose(R.inverse_gamma_gamma_penalty(w, 0.5, 0.5).numpy(),
                               R.horseshoe_exact_penalty(w).numpy(), rtol=1e-10)


def test_inverse_gamma_gamma_defaults_follow_the_tensor_size():
    w = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    want = np.sum(R.inverse_gamma_gamma_penalty(w, 0.5 + 1 / 12, 1 / 12).numpy())
    np.testing.assert_allclose(float(R.InverseGammaGamma(1.0)(w)), want, rtol=1e-6)
    partial = np.sum(R.inverse_gamma_gamma_penalty(w, 0.9, 1 / 12).numpy())
    np.testing.assert_allclose(float(R.InverseGammaGamma(1.0, a=0.9)(w)), partial, rtol=1e-6)


def test_log_t_tends_to_log_uniform_as_its_scale_grows():
    got = _values(R.LogT(1.0, scale=1e4), W) - _values(R.LogUniform(1.0), W)
    np.testing.assert_allclose(got, 0.0, atol=1e-3)


def test_half_precision_input_is_computed_in_float32():
    w = np.array([0.01, -0.3, 2.0])
    for reg in (R.HorseshoePlus(1.0), R.LogUniform(1.0)):
        np.testing.assert_allclose(float(reg(w.astype("float16"))), float(reg(w.astype("float32"))),
                                   rtol=1e-3)


@pytest.mark.parametrize("reg,_,__", CASES, ids=IDS)
def test_config_round_trip(reg, _, __):
    back = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert type(back) is type(reg) and back.get_config() == reg.get_config()
    w = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    assert float(back(w)) == float(reg(w))


@pytest.mark.parametrize("reg", DEFAULTS + [R.InverseGammaGamma(1e-3)],
                         ids=DEFAULT_IDS + ["InverseGammaGamma-n"])
def test_trains_with_xla_and_survives_save_and_load(reg, tmp_path):
    reg = type(reg).from_config({**reg.get_config(), "strength": 1e-3})
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, kernel_regularizer=reg),
                              keras.layers.Dense(1)])
    model.compile("sgd", "mse", jit_compile=True)
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 1)), batch_size=4,
                        epochs=1, verbose=0)
    assert model.jit_compile and np.isfinite(history.history["loss"]).all() and model.losses
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    back = loaded.layers[0].kernel_regularizer
    assert type(back) is type(reg) and back.get_config() == reg.get_config()
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)


@pytest.mark.parametrize("make,name", [
    (lambda: R.L1(-1.0), "strength"), (lambda: R.Lp(1.0, p=1.5), "p"), (lambda: R.Lp(1.0, p=0.0), "p"),
    (lambda: R.Lp(1.0, epsilon=0.0), "epsilon"), (lambda: R.StudentT(1.0, nu=0.0), "nu"),
    (lambda: R.StudentT(1.0, scale=-1.0), "scale"), (lambda: R.LogT(1.0, nu=-2.0), "nu"),
    (lambda: R.LogT(1.0, scale=0.0), "scale"), (lambda: R.LogT(1.0, epsilon=-1e-8), "epsilon"),
    (lambda: R.LogUniform(1.0, epsilon=0.0), "epsilon"), (lambda: R.Horseshoe(1.0, scale=0.0), "scale"),
    (lambda: R.HorseshoePlus(-0.1), "strength"), (lambda: R.HorseshoePlus(1.0, scale=-2.0), "scale"),
    (lambda: R.InverseGammaGamma(1.0, a=0.0), "a"), (lambda: R.InverseGammaGamma(1.0, b=-1.0), "b"),
    (lambda: R.LogScaleT(1.0, nu=0.0), "nu"), (lambda: R.LogScaleT(1.0, scale=0.0), "scale"),
])
def test_bad_arguments_raise_naming_the_argument(make, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        make()


def test_bad_p_message():
    with pytest.raises(ValueError, match=r"^p=1\.5 must be a finite number in \(0, 1\]$"):
        R.Lp(1.0, p=1.5)


def test_every_recipe_penalty_name_is_a_regularizer():
    from tflth.trainer.hparams import PENALTIES
    assert set(PENALTIES) - {"none", "l0"} == set(R.PENALTIES)


@pytest.mark.parametrize("make", [lambda: R.HorseshoePlus(0.7, scale=0.05), lambda: R.InverseGammaGamma(0.7),
                                  lambda: R.LogScaleT(0.7, loc=-3.0), lambda: R.Horseshoe(0.7, exact=True)])
def test_tabulated_call_matches_the_exact_quadrature(make):
    reg = make()
    assert reg._tabulated
    w = tf.Variable(np.concatenate([[0.0, 1e-6, -3e-4], np.random.default_rng(0).normal(0, 0.05, 200), [2.5, -40.0]]))
    with tf.GradientTape() as tape:
        fast = reg(w)
    with tf.GradientTape() as exact_tape:
        exact = reg.strength * tf.reduce_sum(reg.penalty(w))
    np.testing.assert_allclose(float(fast), float(exact), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tape.gradient(fast, w), exact_tape.gradient(exact, w), rtol=1e-4, atol=1e-7)


def test_log_penalty_is_the_log_uniform_penalty():
    model = __import__("tflth").models.lenet_300_100(kernel_regularizer=R.LogPenalty(1e-4))
    assert isinstance(model.get_layer("fc1").kernel_regularizer, R.LogUniform)
