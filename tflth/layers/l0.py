"""L0Dense and L0Conv2D: weights switched by hard-concrete gates (Louizos, Welling & Kingma 2018).

Each gate z multiplies one weight (gates="weight") or a group (gates="neuron": an input
neuron's row of a dense kernel, as the paper's L0Dense; an output filter of a conv kernel
and its bias, as its L0Conv2d). Training draws one gate sample per batch (the paper's
default; the reference's `local_rep=False`), evaluation uses the deterministic gate of
Eq. 13. The penalty added with `add_loss` is the paper's Eq. 14 scaled as its code does:

    l0_lambda / dataset_size * E[L0] + l2 / 2 * sum_g P(z_g != 0) * ||theta_g||^2

where E[L0] counts the parameters each gate switches (pruned ones excluded). The layers
are masked layers too (`tflth.layers.MaskedDense`), so `prune`, `sparsity` and the lottery
runner treat them alike, and `tflth.l0.masks_from_gates` turns closed gates into masks.
"""
import keras
import numpy as np
from keras import ops

from tflth import internals
from tflth.arguments import is_integer, is_number
from tflth.layers._forward import forward
from tflth.layers._holder import VariableHolder
from tflth.layers.family import LayerFamily, register_family
from tflth.layers.masked import MaskedConv2D, MaskedDense
from tflth.ops import hard_concrete as hc
from tflth.ops import noise

GATES = ("weight", "neuron")
# The reference clamps log(alpha) to [log 1e-2, log 1e2] after every step (constrain_parameters).
LOG_ALPHA_RANGE = (-4.605170185988091, 4.605170185988091)


@keras.saving.register_keras_serializable(package="tflth")
class ClipLogAlpha(keras.constraints.Constraint):
    """Keeps log(alpha) in `LOG_ALPHA_RANGE`, as the reference implementation does."""

    def __call__(self, w):
        return ops.clip(w, *LOG_ALPHA_RANGE)


class _L0Mixin:
    """Adds gates, their penalty and a gated forward pass to a masked Dense/Conv layer."""

    features = frozenset()  # computes with kernel * mask * gates: no option that rewrites the kernel alone
    kind = "L0"

    def __init__(self, *args, gates="neuron", l0_lambda=0.1, dataset_size=None, l2=0.0, droprate_init=0.5,
                 beta=hc.BETA, gamma=hc.GAMMA, zeta=hc.ZETA, seed=None, **kwargs):
        if gates not in GATES:
            raise ValueError(f"gates={gates!r} is unknown; allowed: {', '.join(GATES)}")
        if not (is_number(l0_lambda) and l0_lambda >= 0):
            raise ValueError(f"l0_lambda={l0_lambda!r}: must be a finite number >= 0")
        if not (is_number(l2) and l2 >= 0):
            raise ValueError(f"l2={l2!r}: must be a finite number >= 0")
        if dataset_size is None and l0_lambda > 0:
            raise ValueError("dataset_size=None: the L0 penalty is l0_lambda / dataset_size * E[L0] (the paper "
                             "scales lambda by the number of training examples); pass dataset_size=N, or 1 for "
                             "an unscaled penalty")
        if dataset_size is not None and not (is_integer(dataset_size) and dataset_size >= 1):
            raise ValueError(f"dataset_size={dataset_size!r}: must be an integer >= 1")
        hc.check_params(beta, gamma, zeta)
        hc.log_alpha_for_droprate(droprate_init)  # checks it
        super().__init__(*args, **kwargs)
        self.gates, self.l0_lambda, self.dataset_size, self.l2 = gates, float(l0_lambda), dataset_size, float(l2)
        self.droprate_init, self.beta, self.gamma, self.zeta = float(droprate_init), beta, gamma, zeta
        self.seed = seed
        self.seed_generator = noise.layer_seed_generator(seed, self.name)

    def build(self, input_shape):
        super().build(input_shape)
        # log(alpha) in a child layer, saved under its own path; a plain or masked model's file has
        # no gates, and loading it keeps these.
        mean = hc.log_alpha_for_droprate(self.droprate_init)
        self._gates = VariableHolder({"log_alpha": dict(
            shape=self.gate_shape, constraint=ClipLogAlpha(), initializer=keras.initializers.RandomNormal(mean, 0.01))},
            name="gates")

    @property
    def log_alpha(self):
        return self._gates.v["log_alpha"]

    @property
    def gate_shape(self):
        """One gate per weight, per input row (dense) or per output filter (conv)."""
        shape = tuple(internals.kernel_variable(self).shape)
        if self.gates == "weight":
            return shape
        if len(shape) == 2:
            return (shape[0], 1)
        return (1,) * (len(shape) - 1) + (shape[-1],)

    def _filter_gates(self):
        return self.gates == "neuron" and len(internals.kernel_variable(self).shape) > 2

    def _gate_values(self, training):
        if training:
            u = noise.uniform(self.gate_shape, self.seed_generator)
            return hc.sample(self.log_alpha, u, self.beta, self.gamma, self.zeta)
        return hc.deterministic(self.log_alpha, self.gamma, self.zeta)

    def gated_weights(self, z):
        """(kernel, bias) with gates `z`: conv filter gates switch the bias too."""
        bias = self.bias
        if self.use_bias and self._filter_gates():
            bias = bias * ops.reshape(z, (-1,))
        return self.kernel * z, bias

    def inclusion_probability(self):
        """P(z != 0) of each weight's gate, in the kernel's shape (numpy)."""
        p = hc.prob_nonzero(self.log_alpha, self.beta, self.gamma, self.zeta)
        return np.broadcast_to(np.asarray(p), tuple(self.kernel.shape))

    def deterministic_weights(self):
        """The (kernel, bias) the layer computes with in evaluation."""
        return self.gated_weights(self._gate_values(training=False))

    def call(self, inputs, training=None):
        self.add_loss(self.penalty())
        z = ops.cast(self._gate_values(training), self.compute_dtype)  # gates drawn in float32
        return forward(self, inputs, *self.gated_weights(z))

    def penalty(self):
        """The L0 (and gate-weighted L2) penalty of Eq. 14, over the weights still unpruned."""
        p = hc.prob_nonzero(self.log_alpha, self.beta, self.gamma, self.zeta)
        axes = tuple(i for i, n in enumerate(self.gate_shape) if n == 1)
        group = lambda x: ops.sum(x, axis=axes, keepdims=True) if axes else x  # noqa: E731
        sizes = group(ops.cast(self.mask, p.dtype))
        if self.use_bias and self._filter_gates():
            sizes = sizes + 1.0  # the filter's bias (the reference counts it)
        total = 0.0
        if self.l0_lambda:
            total = self.l0_lambda / (self.dataset_size or 1) * ops.sum(p * sizes)
        if self.l2:
            squares = group(ops.square(ops.cast(self.kernel, p.dtype)))
            if self.use_bias and self._filter_gates():
                squares = squares + ops.reshape(ops.square(ops.cast(self.bias, p.dtype)), self.gate_shape)
            total = total + 0.5 * self.l2 * ops.sum(p * squares)
        return ops.convert_to_tensor(total, dtype=self.variable_dtype)  # float32 under mixed precision

    def get_config(self):
        return {**super().get_config(), "gates": self.gates, "l0_lambda": self.l0_lambda,
                "dataset_size": self.dataset_size, "l2": self.l2, "droprate_init": self.droprate_init,
                "beta": self.beta, "gamma": self.gamma, "zeta": self.zeta, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tflth")
class L0Dense(_L0Mixin, MaskedDense):
    """`keras.layers.Dense` with hard-concrete L0 gates and a pruning mask.

    Args (besides Dense's):
      gates: "neuron" (one gate per input neuron, the paper's) or "weight".
      l0_lambda: lambda of the L0 penalty (the paper: 0.1 for MNIST, with dataset_size = N).
      dataset_size: N, the number of training examples lambda is divided by (required when
        l0_lambda > 0; 1 for an unscaled penalty).
      l2: strength of the gate-weighted L2 term of Eq. 14 (0: none).
      droprate_init: the gates' initial probability of being closed (the reference: 0.5, and
        0.2 for the input layer of its MLP); log(alpha) starts at N(log((1-d)/d), 0.01).
      beta, gamma, zeta: temperature and stretch of the hard concrete (2/3, -0.1, 1.1).
      seed: seed of the gate noise (None: drawn from Keras' global seed).
    """

    _default_prefix = "l0_dense"


@keras.saving.register_keras_serializable(package="tflth")
class L0Conv2D(_L0Mixin, MaskedConv2D):
    """`keras.layers.Conv2D` with hard-concrete L0 gates (per output filter, or per weight) and a
    pruning mask; the arguments of `L0Dense` besides Conv2D's."""

    _default_prefix = "l0_conv2d"


register_family(LayerFamily("l0", L0Dense, L0Conv2D, takes_dataset_size=True))
