"""Bayesian Dense and Conv2D layers: a mean-field Gaussian posterior over the kernel.

Each kernel weight has a posterior N(mean, scale^2): the mean is the layer's `kernel` (so the
layers are masked layers, and `prune`, `sparsity`, magnitude scores and the lottery runner
treat them like any other), the scale is softplus(rho). The bias is a point estimate, as in
TFP's layers. The prior (`tflth.priors`) may multiply the weights by its own variables
(spike-and-slab inclusions, drawn once per batch; a horseshoe's group scales, drawn per example
and applied to the inputs or outputs) and gives KL(q || p), which the layer adds with
`add_loss` divided by `dataset_size`, the number of training examples, so that the training
loss is the negative ELBO per example. `kl_weight` (a variable, 1 by default) scales it for a
warm-up (`tflth.bayes.KLWarmup`). The KL is added at every call, as TFP's layers do: a layer
called twice in one model (shared weights) counts its KL twice.

Training samples weights; evaluation computes with the posterior mean (mean mode), unless the
layer's `sampling` is set (`tflth.bayes.predict` sets it for Monte-Carlo prediction). The
estimators of the sampled pass differ in one method, `_sampled_linear`:

- Reparameterization (Kingma & Welling 2014; Blundell et al. 2015): one weight sample per batch.
  With `local_reparameterization=True`, the pre-activations are sampled instead, one per
  example (Kingma, Salimans & Welling 2015), as sparse variational dropout trains.
- Flipout (Wen et al. 2018): one weight perturbation per batch, decorrelated across examples by
  random sign flips of inputs and outputs; two matmuls (or convolutions) per step.

Pruned weights have mean and scale 0: a pruned weight is exactly zero in every sample.
"""
import functools
import numbers

import keras
import numpy as np
from keras import ops

from tflth import internals, priors
from tflth.layers._forward import finish, forward, linear
from tflth.layers._holder import VariableHolder
from tflth.layers.family import LayerFamily, register_family
from tflth.layers.masked import MaskedConv2D, MaskedDense
from tflth.ops import noise
from tflth.ops import variational as vi

# The initial posterior scale: sparse variational dropout starts at log sigma^2 = -10.
SCALE_INIT = 0.006737946999085467  # exp(-5)


@keras.saving.register_keras_serializable(package="tflth")
class AtMost(keras.constraints.Constraint):
    """Projects a variable back to at most `value` after each optimizer step (the cap on a
    horseshoe's w~ scale: see `tflth.priors.Horseshoe(max_weight_scale=)`)."""

    def __init__(self, value):
        self.value = float(value)

    def __call__(self, w):
        return ops.minimum(w, self.value)

    def get_config(self):
        return {"value": self.value}


class _BayesianMixin:
    """Posterior, prior, KL, modes and config; each estimator adds `_sampled_linear`."""

    features = frozenset()  # computes with posterior samples: no option that rewrites the kernel alone
    kind = "Bayesian"

    def __init__(self, *args, prior="normal", dataset_size=None, scale_init=SCALE_INIT, seed=None, **kwargs):
        prior = priors.get(prior)
        if dataset_size is None:
            raise ValueError("dataset_size=None: the KL term is divided by the number of training examples "
                             "(the loss is the negative ELBO per example); pass dataset_size=N, or 1 for an "
                             "unscaled KL")
        if not (isinstance(dataset_size, numbers.Integral) and not isinstance(dataset_size, bool) and dataset_size >= 1):
            raise ValueError(f"dataset_size={dataset_size!r}: must be an integer >= 1")
        if not priors.positive_number(scale_init):
            raise ValueError(f"scale_init={scale_init!r}: the initial posterior scale must be a finite number > 0")
        policy = keras.dtype_policies.get(kwargs.get("dtype") or keras.config.dtype_policy())
        if policy.compute_dtype != policy.variable_dtype:
            # Mixed precision: the layer samples, and computes its KL and log alpha, in float32
            # (exp, log and squared scales of 1e-3 under- and overflow in float16); the layers
            # around it stay in float16 / bfloat16.
            kwargs["dtype"] = policy.variable_dtype
        super().__init__(*args, **kwargs)
        self.prior, self.dataset_size, self.scale_init, self.seed = prior, int(dataset_size), float(scale_init), seed
        self.sampling = False
        self.seed_generator = noise.layer_seed_generator(seed, self.name)

    def build(self, input_shape):
        super().build(input_shape)
        self.prior.check(self)
        shape = tuple(internals.kernel_variable(self).shape)
        rho = float(vi.softplus_inverse(self.scale_init))
        cap = self.prior.max_weight_scale
        if cap is not None:  # a projection after each optimizer step, so the data can still lower the scale
            rho_max = float(vi.softplus_inverse(cap))
            rho = min(rho, rho_max)
        self._posterior = VariableHolder(
            {"kernel_rho": dict(shape=shape, initializer=keras.initializers.Constant(rho),
                                constraint=None if cap is None else AtMost(rho_max)),
             "kl_weight": dict(shape=(), initializer=keras.initializers.Constant(1.0), trainable=False),
             **{name: dict(shape=s, initializer=init) for name, (s, init) in self.prior.variables(shape).items()}},
            name="posterior")

    @property
    def kernel_scale(self):
        """softplus(rho): the posterior scale of every weight (pruned ones included; they are
        masked where it is used)."""
        return ops.softplus(self._posterior.v["kernel_rho"])

    @property
    def kl_weight(self):
        return self._posterior.v["kl_weight"]

    @property
    def prior_variables(self):
        return self._posterior.v

    def inclusion_probability(self):
        """P(z = 1) of a spike-and-slab prior's inclusion variables, in the kernel's shape (None
        for other priors; numpy)."""
        logits = self._posterior.v.get("inclusion_logits")
        if logits is None:
            return None
        return np.broadcast_to(1.0 / (1.0 + np.exp(-np.asarray(logits))), tuple(self.kernel.shape))

    def kl(self):
        """KL(q || p) of the layer's unpruned weights and the prior's variables."""
        return self.prior.kl(self.kernel, self.kernel_scale, ops.cast(self.mask, self.kernel.dtype),
                             self._posterior.v)

    def mean_multiplier(self):
        return self.prior.mean_multiplier(self._posterior.v)

    def deterministic_weights(self):
        """(kernel, bias) of the mean mode: the posterior mean of every weight."""
        m = self.mean_multiplier()
        return (self.kernel if m is None else self.kernel * m), self.bias

    def call(self, inputs, training=None):
        self.add_loss(ops.cast(self.kl_weight * self.kl() / self.dataset_size, self.compute_dtype))
        if not (training or self.sampling):
            return forward(self, inputs, *self.deterministic_weights())
        mean, scale = self.kernel, self.kernel_scale * ops.cast(self.mask, self.kernel.dtype)
        m = self.prior.multiplier(self._posterior.v, True, self.seed_generator)
        if m is not None:
            mean, scale = mean * m, scale * m
        per_example = self.prior.example_multiplier(self._posterior.v, ops.shape(inputs)[0], self.seed_generator)
        side, m = per_example if per_example is not None else (None, None)
        if side == "input":
            inputs = inputs * _per_example(self, inputs, m)
        outputs = self._sampled_linear(inputs, mean, scale)
        if side == "output":
            outputs = outputs * _per_example(self, outputs, m)
        return finish(self, outputs, self.bias)

    def _sampled_linear(self, inputs, mean, scale):
        """The pre-activation with weights drawn from N(mean, scale^2): each estimator's own."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "prior": keras.saving.serialize_keras_object(self.prior),
                "dataset_size": self.dataset_size, "scale_init": self.scale_init, "seed": self.seed}


class _Reparameterization:
    def __init__(self, *args, local_reparameterization=False, **kwargs):
        if not isinstance(local_reparameterization, bool):
            raise ValueError(f"local_reparameterization={local_reparameterization!r}: must be True or False")
        super().__init__(*args, **kwargs)
        self.local_reparameterization = local_reparameterization

    @property
    def training_matmuls(self):
        return 2 if self.local_reparameterization else 1  # x mean and x^2 scale^2

    def _sampled_linear(self, inputs, mean, scale):
        if not self.local_reparameterization:
            return linear(self, inputs, mean + scale * noise.normal(ops.shape(mean), self.seed_generator))
        # N(x mean, x^2 scale^2) for every pre-activation of every example.
        mu = linear(self, inputs, mean)
        std = ops.sqrt(linear(self, ops.square(inputs), ops.square(scale)) + 1e-16)
        return mu + std * noise.normal(ops.shape(mu), self.seed_generator)

    def get_config(self):
        return {**super().get_config(), "local_reparameterization": self.local_reparameterization}


def _example_shape(layer, x):
    """[examples, 1, ..., channels] of `x` (the channels where the layer's data_format has them):
    the shape of a value per example and channel, the same across a conv's positions."""
    shape = ops.shape(x)
    ones = [1] * (len(x.shape) - 2)
    if getattr(layer, "data_format", "channels_last") == "channels_last":  # Dense: N-D inputs too
        return [shape[0]] + ones + [shape[-1]]
    return [shape[0], shape[1]] + ones


def _per_example(layer, x, m):
    """m, of shape (examples, channels), shaped to multiply `x`."""
    return ops.reshape(m, _example_shape(layer, x))


class _Flipout:
    training_matmuls = 2  # the mean's and the perturbation's

    def _signs(self, x):
        """+-1 per example and channel, the same across a conv's positions."""
        return vi.signs(noise.uniform(_example_shape(self, x), self.seed_generator))

    def _sampled_linear(self, inputs, mean, scale):
        perturbation = scale * noise.normal(ops.shape(mean), self.seed_generator)
        flipped = linear(self, inputs * self._signs(inputs), perturbation)
        return linear(self, inputs, mean) + flipped * self._signs(flipped)


_DOC = """`keras.layers.{base}` with a mean-field Gaussian posterior over its kernel ({estimator}), a prior,
    and a pruning mask; {base}'s arguments, and:

    Args:
      prior: a `tflth.priors.Prior`, or its name ("normal", "log_uniform", "horseshoe",
        "spike_and_slab"); default Normal(1).
      dataset_size: N, the number of training examples the KL is divided by (required; 1 for an
        unscaled KL).
      scale_init: the initial posterior scale of every weight (default exp(-5), sparse variational
        dropout's log sigma^2 = -10).
      seed: seed of the weight noise (None: drawn from Keras' global seed).{extra}
    """
_LOCAL = """
      local_reparameterization: sample the pre-activations, one per example, instead of one
        weight sample per batch (Kingma, Salimans & Welling 2015)."""


@keras.saving.register_keras_serializable(package="tflth")
class DenseReparameterization(_Reparameterization, _BayesianMixin, MaskedDense):
    __doc__ = _DOC.format(base="Dense", estimator="reparameterization estimator", extra=_LOCAL)
    _default_prefix = "dense_reparameterization"


@keras.saving.register_keras_serializable(package="tflth")
class DenseFlipout(_Flipout, _BayesianMixin, MaskedDense):
    __doc__ = _DOC.format(base="Dense", estimator="Flipout estimator", extra="")
    _default_prefix = "dense_flipout"


@keras.saving.register_keras_serializable(package="tflth")
class Conv2DReparameterization(_Reparameterization, _BayesianMixin, MaskedConv2D):
    __doc__ = _DOC.format(base="Conv2D", estimator="reparameterization estimator", extra=_LOCAL)
    _default_prefix = "conv2d_reparameterization"


@keras.saving.register_keras_serializable(package="tflth")
class Conv2DFlipout(_Flipout, _BayesianMixin, MaskedConv2D):
    __doc__ = _DOC.format(base="Conv2D", estimator="Flipout estimator", extra="")
    _default_prefix = "conv2d_flipout"


BAYESIAN_LAYERS = (DenseReparameterization, DenseFlipout, Conv2DReparameterization, Conv2DFlipout)

register_family(LayerFamily("reparam", DenseReparameterization, Conv2DReparameterization, takes_dataset_size=True))
register_family(LayerFamily("flipout", DenseFlipout, Conv2DFlipout, takes_dataset_size=True))
register_family(LayerFamily("local_reparam", functools.partial(DenseReparameterization, local_reparameterization=True),
                            functools.partial(Conv2DReparameterization, local_reparameterization=True),
                            takes_dataset_size=True))
