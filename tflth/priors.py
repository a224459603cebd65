"""Priors of the Bayesian layers (`tflth.layers.DenseFlipout`, ...): small serializable objects.
(`tflth.regularizers` has some of the same priors, by the same names, as MAP penalties.)

A layer's kernel has a mean-field Gaussian posterior N(mean, scale^2). A prior says

- `variables(kernel_shape)`: the extra variational parameters it needs in the layer (a
  hierarchical prior's scales, spike-and-slab inclusion logits), created by the layer;
- `multiplier(v, sample, seed)`: what the Gaussian weights are multiplied by (a sampled
  inclusion variable, drawn once per batch, or its mean), or None;
- `example_multiplier(v, batch_size, seed)`: a multiplier drawn for each example (a horseshoe's
  group scales), applied to the inputs or the outputs of the layer, or None;
- `max_weight_scale`: a cap on the posterior scale of the Gaussian weights, or None;
- `kl(mean, scale, mask, v)`: KL(q || p) summed over the unpruned weights and the prior's own
  variables. The layer adds it with `add_loss`, divided by the number of training examples.

The math is in `tflth.ops.variational`. A prior object holds only numbers, so configs saved in
`.keras` files rebuild it (no lambdas); a layer accepts a prior, its registered name or its
config.
"""
import dataclasses
import math
from typing import Optional

import keras
from keras import ops

from tflth.arguments import is_number
from tflth.ops import noise
from tflth.ops import variational as vi

# The group of weights one horseshoe scale multiplies, by kernel rank: an input neuron's row of
# a dense kernel (Louizos et al. 2017 prune input neurons, as L0's neuron gates do), an output
# filter of a conv kernel.
GROUPS = ("input", "output")
"""What one horseshoe scale multiplies: an input neuron's weights, or an output unit's."""

# Registered as "tflth.priors>Name": tflth.regularizers already owns "tflth>LogUniform" and
# "tflth>Horseshoe", and Keras keeps one class per registered name (the last imported).


def positive_number(value):
    """A finite real number > 0 (numpy scalars too; not a bool)."""
    return is_number(value) and value > 0


def _positive(prior, *names):
    """Checks the fields `names` of `prior` and stores them as Python floats (JSON configs)."""
    for name in names:
        value = getattr(prior, name)
        if not positive_number(value):
            raise ValueError(f"{type(prior).__name__}: {name}={value!r} must be a finite number > 0")
        object.__setattr__(prior, name, float(value))  # a frozen dataclass


class Prior:
    """Base class: a prior with no variables of its own, no multiplier, and the KL of `weight_kl`."""
    max_weight_scale = None

    def check(self, layer):
        """Raises ValueError if this prior cannot be used on `layer` (called when it is built)."""

    def variables(self, kernel_shape):
        """{name: (shape, initializer)} of the prior's variational parameters."""
        return {}

    def multiplier(self, v, sample, seed):
        return None

    def example_multiplier(self, v, batch_size, seed):
        """(side, m): m of shape (batch_size, n) multiplies each example's inputs (side "input", n
        input features) or outputs (side "output", n units or filters); None if there is none."""
        return None

    def mean_multiplier(self, v):
        """The multiplier of the deterministic (posterior-mean) mode; None if there is none."""
        return self.multiplier(v, False, None)

    def weight_kl(self, mean, scale, v):
        raise NotImplementedError

    def kl(self, mean, scale, mask, v):
        return ops.sum(mask * self.weight_kl(mean, scale, v))

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tflth.priors")
@dataclasses.dataclass(frozen=True)
class Normal(Prior):
    """w ~ N(0, scale^2): Bayes by Backprop (Blundell et al. 2015); TFP's default prior is scale 1."""
    scale: float = 1.0

    def __post_init__(self):
        _positive(self, "scale")

    def weight_kl(self, mean, scale, v):
        return vi.kl_normal(mean, scale, self.scale)


@keras.saving.register_keras_serializable(package="tflth.priors")
@dataclasses.dataclass(frozen=True)
class LogUniform(Prior):
    """p(|w|) ~ 1 / |w|: sparse variational dropout (Molchanov, Ashukha & Vetrov 2017). The KL
    depends only on alpha = scale^2 / mean^2 (Eq. 14's approximation); the paper drops weights
    with log alpha > 3 (`tflth.pruning.prune(score="log_alpha", threshold=-3)`)."""

    def weight_kl(self, mean, scale, v):
        return vi.kl_log_uniform(vi.log_alpha(mean, scale))


@keras.saving.register_keras_serializable(package="tflth.priors")
@dataclasses.dataclass(frozen=True)
class Horseshoe(Prior):
    """The horseshoe, non-centred (Louizos, Ullrich & Welling 2017; Ghosh & Doshi-Velez 2017):

        w = s * z_g * w~,   s ~ C+(0, global_scale),  z_g ~ C+(0, scale),  w~ ~ N(0, 1)

    with one z per group g (`group`: "input" neurons of a dense kernel and "output" filters of a
    conv kernel by default). Each half-Cauchy is split as s^2 = s_a * s_b (s_a ~ Gamma(1/2,
    rate 1/b^2), s_b ~ InvGamma(1/2, 1)) with log-normal posteriors, so every KL is analytic.
    Training draws s z_g for each example, as Louizos et al. do (the local reparameterisation of
    the scales: an input neuron's scale multiplies that input, a filter's scale its output); the
    mean mode uses E[s z]. The layer's kernel holds w~; `tflth.pruning` score "horseshoe_scale"
    ranks groups by the signal-to-noise ratio of s z (`scale_snr`; node pruning: threshold 1
    drops the groups whose scale is back at the prior, e^1.5 = 4.4817 is the authors' log alpha
    > -3).

    Defaults: global_scale 1e-5 and scale 1 (Ghosh & Doshi-Velez's b_g and b_0). The posteriors
    start where s * z = 1, with s_a at its prior's typical value, so w~ starts as the kernel
    initializer's weights. `max_weight_scale` (None: no bound) projects the posterior scale of w~
    back to at most this value after every optimizer step, as Louizos et al.'s public code clips
    the weight variances of its group normal-Jeffreys layers (clip_var=0.04 on LeNet-300-100's
    first layer: a scale of 0.2). Not part of the variational objective, it keeps w~'s KL from
    pushing the weights' noise up to the N(0, 1) prior's, so that the scales do the pruning. A
    layer's `scale_init` above the cap starts at the cap.
    """
    global_scale: float = 1e-5
    scale: float = 1.0
    group: str = ""  # "" = by kernel rank: dense "input", conv "output"
    scale_init: float = 0.1  # initial std of the log-normal posteriors' log
    max_weight_scale: Optional[float] = None

    def __post_init__(self):
        _positive(self, "global_scale", "scale", "scale_init")
        if self.max_weight_scale is not None:
            _positive(self, "max_weight_scale")
        if self.group not in ("",) + GROUPS:
            raise ValueError(f"Horseshoe: group={self.group!r} is unknown; allowed: {', '.join(GROUPS)} "
                             "(or '' for dense 'input', conv 'output')")

    def check(self, layer):
        if self.group == "input" and len(layer.kernel.shape) > 2:
            raise ValueError(f"Horseshoe(group='input') does not fit conv layer {layer.name!r}: a filter's "
                             "input channels are not a neuron; use group='output' (filters) there")

    def group_shape(self, kernel_shape):
        if self._side(kernel_shape) == "input":
            return (kernel_shape[0],) + (1,) * (len(kernel_shape) - 1)
        return (1,) * (len(kernel_shape) - 1) + (kernel_shape[-1],)

    def variables(self, kernel_shape):
        log_sa = 2.0 * math.log(self.global_scale)  # s_a at its prior's scale, s_b so that s = 1
        rho = float(vi.softplus_inverse(self.scale_init))
        shape = self.group_shape(kernel_shape)
        return {"global_loc": ((2,), keras.initializers.Constant([log_sa, -log_sa])),
                "global_rho": ((2,), keras.initializers.Constant(rho)),
                "group_loc": ((2, *shape), keras.initializers.Zeros()),
                "group_rho": ((2, *shape), keras.initializers.Constant(rho))}

    def _side(self, kernel_shape):
        return self.group or ("input" if len(kernel_shape) == 2 else "output")

    def _log_median(self, v):
        """The median of log(s * z) = (log s_a + log s_b + log a_g + log b_g) / 2 of each group."""
        return 0.5 * (ops.sum(v["global_loc"]) + ops.sum(v["group_loc"], axis=0))

    def example_multiplier(self, v, batch_size, seed):
        """s * z_g drawn for each example: (side, (batch_size, groups)). log s and each log z_g are
        sums of two independent normals (s_a and s_b, a_g and b_g), so each is drawn as one."""
        def log_scale(loc, rho, shape):
            loc, var = ops.sum(loc, axis=0), ops.sum(ops.square(ops.softplus(rho)), axis=0)
            return 0.5 * (loc + ops.sqrt(var) * noise.normal(shape, seed))

        group_loc, group_rho = ops.reshape(v["group_loc"], (2, -1)), ops.reshape(v["group_rho"], (2, -1))
        log_s = log_scale(v["global_loc"], v["global_rho"], (batch_size, 1))
        log_z = log_scale(group_loc, group_rho, (batch_size, ops.shape(group_loc)[1]))
        return self._side(v["group_loc"].shape[1:]), ops.exp(log_s + log_z)

    def _log_variance(self, v):
        """The variance of log(s z): a quarter of the four log-normals' summed variances."""
        return 0.25 * (ops.sum(ops.square(ops.softplus(v["global_rho"])))
                       + ops.sum(ops.square(ops.softplus(v["group_rho"])), axis=0))

    def mean_multiplier(self, v):
        """E[s z] of each group (log(s z) is normal)."""
        return ops.exp(self._log_median(v) + 0.5 * self._log_variance(v))

    def scale_snr(self, v):
        """E[s z] / sd[s z] = 1 / sqrt(exp(var log(s z)) - 1) of each group: how certain the posterior
        is of the group's scale. A group the data does not use returns to the prior (a wide
        log-normal, SNR < 1), while its E[s z] need not shrink (its w~ returns to N(0, 1) instead);
        Louizos et al. prune groups by this dispersion (their log dropout rate of z). The variance
        is of log(s z): s, shared by the layer, moves every group of the layer alike, which leaves
        the ranking within a layer as z's alone but shifts a threshold's cut."""
        return 1.0 / ops.sqrt(ops.expm1(self._log_variance(v)))

    def weight_kl(self, mean, scale, v):
        return vi.kl_normal(mean, scale, 1.0)

    def kl(self, mean, scale, mask, v):
        g_loc, g_scale = v["global_loc"], ops.softplus(v["global_rho"])
        z_loc, z_scale = v["group_loc"], ops.softplus(v["group_rho"])
        scales = (vi.kl_lognormal_gamma(g_loc[0], g_scale[0], self.global_scale ** -2)
                  + vi.kl_lognormal_inverse_gamma(g_loc[1], g_scale[1], 1.0)
                  + ops.sum(vi.kl_lognormal_gamma(z_loc[0], z_scale[0], self.scale ** -2))
                  + ops.sum(vi.kl_lognormal_inverse_gamma(z_loc[1], z_scale[1], 1.0)))
        return super().kl(mean, scale, mask, v) + scales


@keras.saving.register_keras_serializable(package="tflth.priors")
@dataclasses.dataclass(frozen=True)
class SpikeAndSlab(Prior):
    """w = z * w_slab, z ~ Bernoulli(inclusion), w_slab ~ N(0, slab_scale^2), with a Bernoulli
    posterior per weight, relaxed to a binary concrete sample of `temperature` in training
    (Bai, Song & Cheng 2020). KL = sum KL(Bern(p) || Bern(inclusion)) + p * KL(slab part), the
    paper's; the mean mode multiplies by p = P(z = 1), the posterior mean of z, and `tflth.pruning`
    score "inclusion" ranks weights by p (prune p < 0.5 with threshold=0.5).
    """
    inclusion: float = 0.5
    slab_scale: float = 1.0
    temperature: float = 0.5
    inclusion_init: float = 0.9  # q(z = 1) at the start

    def __post_init__(self):
        _positive(self, "slab_scale", "temperature")
        for name in ("inclusion", "inclusion_init"):
            value = getattr(self, name)
            if not (is_number(value) and 0 < value < 1):
                raise ValueError(f"SpikeAndSlab: {name}={value!r} must be a probability in (0, 1)")

    def variables(self, kernel_shape):
        logit = math.log(self.inclusion_init / (1.0 - self.inclusion_init))
        return {"inclusion_logits": (tuple(kernel_shape), keras.initializers.Constant(logit))}

    def multiplier(self, v, sample, seed):
        logits = v["inclusion_logits"]
        if sample:
            return vi.relaxed_bernoulli(logits, noise.uniform(ops.shape(logits), seed), self.temperature)
        return ops.sigmoid(logits)

    def weight_kl(self, mean, scale, v):
        p = ops.sigmoid(v["inclusion_logits"])
        return vi.kl_bernoulli(p, self.inclusion) + p * vi.kl_normal(mean, scale, self.slab_scale)


PRIORS = {"normal": Normal, "log_uniform": LogUniform, "horseshoe": Horseshoe, "spike_and_slab": SpikeAndSlab}
"""The variational priors by name (the `--prior` flag)."""


def get(prior):
    """A Prior given one, its registered name, or its Keras config (a saved layer's)."""
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, str) and prior in PRIORS:
        return PRIORS[prior]()
    if isinstance(prior, dict):
        try:  # a prior's own ValueError (a bad scale in the config) goes through
            obj = keras.saving.deserialize_keras_object(prior)
        except TypeError:  # Keras' answer for an unknown class
            obj = None
        if isinstance(obj, Prior):
            return obj
    raise ValueError(f"prior={prior!r} is not a prior; allowed: a tflth.priors.Prior or one of {sorted(PRIORS)}")


__all__ = ["GROUPS", "PRIORS", "Horseshoe", "LogUniform", "Normal", "Prior", "SpikeAndSlab", "get"]
