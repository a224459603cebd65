"""Dense and Conv2D layers whose kernel carries a binary pruning mask.

The mask is a non-trainable weight, and the kernel variable itself holds 0.0 at
every pruned position, so the forward pass costs what Keras' own layer costs:
- `tflth.pruning.set_masks` / `prune` zero the pruned weights when masks change;
- a kernel constraint multiplies by the mask after every optimizer step, so momentum
  or Adam moments cannot bring a pruned weight back;
- `set_weights` and loading a saved model re-apply the mask.
Checkpoints therefore hold true zeros. After assigning the kernel variable by hand,
call `tflth.pruning.apply_mask(layer)`.

With `straight_through=True` (magnitude pruning with a straight-through estimator, as in
Lin et al. 2020's dynamic pruning with feedback and jaxpruner's STE) the kernel keeps its dense
values instead: the forward pass reads kernel * mask, the gradient reaches every weight as if
unmasked, and pruning again by magnitude can bring a weight back. `deterministic_weights()`
gives kernel * mask either way; `tflth.pruning.straight_through(model, False)` ends it (the
kernel is masked for good).

Optionally, training applies targeted dropout (Gomez et al. 2019; `tflth.ops.targeted_dropout`)
to the masked kernel: `targeted_dropout` (alpha) > 0 turns it on. Evaluation and the
default path run Keras' own `call`.

Weight files (`.weights.h5`, `.keras`) load across plain and masked models of the
same architecture. A masked layer is filed where Keras files its plain layer
(`layers/dense/vars`: kernel, bias) and its mask under its own path
(`layers/dense/_mask_holder/vars/0`), which a plain model never asks for. A masked
model loading a plain file finds no mask there and starts from all ones.
"""

import keras
from keras import ops

from tflth import internals
from tflth.arguments import is_number
from tflth.layers._forward import forward
from tflth.pruning.prunable import FEATURES, Prunable, check_options
from tflth.ops import targeted_dropout as td


class _KeepMasked:
    """Kernel constraint: the user's constraint (if any), then the mask."""

    def __init__(self, layer, constraint):
        self.layer = layer
        self.constraint = constraint

    def __call__(self, kernel):
        if self.constraint is not None:
            kernel = self.constraint(kernel)
        if self.layer.straight_through:
            return kernel
        return kernel * ops.cast(self.layer.mask, kernel.dtype)


def _default_name(prefix):
    # What Keras would name an unnamed layer of a class called `prefix` (its
    # `auto_name`): masked_dense, masked_dense_1, ...
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


class _MaskHolder(keras.layers.Layer):
    """Owns the mask weight, so that Keras saves it apart from kernel and bias.

    Kept out of the masked layer's own variables because Keras checks that a
    Dense/Conv2D entry holds exactly as many arrays as the layer has variables.
    """

    def __init__(self, shape, dtype, on_load, **kwargs):
        super().__init__(**kwargs)
        self.variable = self.add_weight(
            name="mask", shape=shape, initializer="ones", trainable=False, dtype=dtype)
        self._on_load = on_load
        self.built = True

    def load_own_variables(self, store):
        if len(store.keys()) == 0:  # Keras' answer for a path the file lacks: a plain layer's file
            self.variable.assign(ops.ones_like(self.variable))
        else:
            super().load_own_variables(store)
        self._on_load()


def _check_targeted(rate, fraction, unit):
    if not (is_number(rate) and 0.0 <= rate < 1.0):
        raise ValueError(f"targeted_dropout={rate!r}: the drop rate alpha must be a number in [0, 1)")
    if not (is_number(fraction) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"targeted_fraction={fraction!r}: the targeting proportion gamma must be a number in [0, 1]")
    if unit not in td.UNITS:
        raise ValueError(f"targeted_unit={unit!r} is unknown; allowed: {', '.join(td.UNITS)}")


class _MaskedKernel(Prunable):
    """Adds a `mask` weight beside the kernel of a Keras layer; Keras' own `call` computes with the
    kernel, which holds 0.0 wherever the mask does. `layer.weights` is the Keras layer's own
    (kernel, bias), then the mask: a layer lists its own variables first.

    A kind with more options (targeted dropout, straight-through) says so in `features`.
    """

    _default_prefix = None  # set by each class
    features = frozenset({"kernel_is_weights"})
    kind = "masked"
    straight_through = False

    def __init__(self, *args, name=None, straight_through=False, targeted_dropout=0.0, **kwargs):
        check_options(type(self), straight_through, targeted_dropout)  # a kind without them refuses them
        super().__init__(*args, name=name or _default_name(self._default_prefix), **kwargs)

    def deterministic_weights(self):
        """(kernel, bias) the layer computes with: the kernel times its mask."""
        return self.kernel * ops.cast(self.mask, self.kernel.dtype), self.bias

    def build(self, input_shape):
        super().build(input_shape)
        # Keras loads a layer's own variables before its children's: the kernel is
        # re-masked once the holder has loaded the mask.
        kernel = internals.kernel_variable(self)
        self._mask_holder = _MaskHolder(kernel.shape, kernel.dtype, on_load=self.apply_mask, name="mask")
        kernel.constraint = _KeepMasked(self, kernel.constraint)

    @property
    def mask(self):
        if not self.built:  # like `kernel`; `getattr(layer, "mask", None)` gives None
            raise AttributeError("You must build the layer before accessing `mask`.")
        return self._mask_holder.variable

    def __repr__(self):  # Keras' says "Dense": `__name__` is borrowed (see `tflth.internals.filed_as`)
        return f"<{type(self).__qualname__} name={self.name}, built={self.built}>"

    def apply_mask(self):
        """Zeroes the pruned entries of the kernel variable (a straight-through kernel keeps them)."""
        if not self.straight_through:  # a straight-through kernel keeps its dense values
            kernel = internals.kernel_variable(self)
            kernel.assign(kernel * self.mask)

    def set_weights(self, weights):
        super().set_weights(weights)
        self.apply_mask()


class _MaskedMixin(_MaskedKernel):
    """A masked Dense or Conv layer (whose forward pass `tflth.layers._forward` writes), with
    optional targeted dropout in training and a straight-through mode."""

    features = frozenset(FEATURES)  # the kernel times the mask is all it computes with

    def __init__(self, *args, targeted_dropout=0.0, targeted_fraction=0.5, targeted_unit="weight",
                 straight_through=False, **kwargs):
        check_options(type(self), straight_through, targeted_dropout)
        _check_targeted(targeted_dropout, targeted_fraction, targeted_unit)
        if not isinstance(straight_through, bool):
            raise ValueError(f"straight_through={straight_through!r}: must be True or False")
        super().__init__(*args, **kwargs)
        self.targeted_dropout = float(targeted_dropout)
        self.targeted_fraction = float(targeted_fraction)
        self.targeted_unit = targeted_unit
        self.straight_through = straight_through
        if self.targeted_dropout > 0:  # a seed state only where it is used: default layers keep their variables
            self._targeted_seed = keras.random.SeedGenerator()

    def call(self, inputs, training=None):
        kernel = self.kernel
        if self.straight_through:  # forward: kernel * mask; backward: the identity
            kernel = kernel + ops.stop_gradient(kernel * ops.cast(self.mask, kernel.dtype) - kernel)
        if training and self.targeted_dropout > 0:
            kernel = td.DROPOUTS[self.targeted_unit](kernel, self.targeted_fraction, self.targeted_dropout,
                                                     self._targeted_seed)
        elif not self.straight_through and getattr(self, "data_format", "channels_last") == "channels_last":
            return super().call(inputs)  # Keras' own forward pass, untouched
        # channels_first: Keras' Conv call adds the bias on the wrong axis when width == filters (see finish)
        return forward(self, inputs, kernel, self.bias)

    def get_config(self):
        return {**super().get_config(), "targeted_dropout": self.targeted_dropout,
                "targeted_fraction": self.targeted_fraction, "targeted_unit": self.targeted_unit,
                "straight_through": self.straight_through}


@internals.filed_as(keras.layers.Dense)
@keras.saving.register_keras_serializable(package="tflth", name="MaskedDense")
class MaskedDense(_MaskedMixin, keras.layers.Dense):
    """`keras.layers.Dense` with a pruning mask; Dense's arguments, and:

    Args:
      targeted_dropout: alpha, the probability in [0, 1) that a candidate is dropped in a
        training step (0: off, the default; the paper uses 0.5).
      targeted_fraction: gamma in [0, 1], the share of lowest-magnitude weights (per output
        unit) or units that are candidates (the paper: 0.5).
      targeted_unit: "weight" (candidates are weights, ranked by |w| within each output
        unit) or "unit" (whole output units, ranked by their L2 norm).
    """

    _default_prefix = "masked_dense"


@internals.filed_as(keras.layers.Conv2D)
@keras.saving.register_keras_serializable(package="tflth", name="MaskedConv2D")
class MaskedConv2D(_MaskedMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a pruning mask; Conv2D's arguments and the targeted
    dropout ones of `MaskedDense` (an output unit is a filter: its kernel is ranked as
    one column of the kernel reshaped to (-1, filters))."""

    _default_prefix = "masked_conv2d"

