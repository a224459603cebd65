"""Dense and Conv2D layers whose kernel carries a binary pruning mask.

The mask is a non-trainable weight, and the kernel variable itself holds 0.0 at
every pruned position, so the forward pass costs what Keras' own layer costs:
- `tflth.pruning.set_masks` / `prune` zero the pruned weights when masks change;
- a kernel constraint multiplies by the mask after every optimizer step, so momentum
  or Adam moments cannot bring a pruned weight back;
- `set_weights` and loading a saved model re-apply the mask.
Checkpoints therefore hold true zeros. After assigning the kernel variable by hand,
call `tflth.pruning.apply_mask(layer)`.
"""
import keras
from keras import ops

from tflth.layers.family import LayerFamily, register_family


class _KeepMasked:
    """Kernel constraint: the user's constraint (if any), then the mask."""

    def __init__(self, layer, constraint):
        self.layer = layer
        self.constraint = constraint

    def __call__(self, kernel):
        if self.constraint is not None:
            kernel = self.constraint(kernel)
        return kernel * ops.cast(self.layer.mask, kernel.dtype)


class _MaskedMixin:
    """Adds a `mask` weight beside the kernel of a Keras Dense/Conv layer.

    Keras saves Dense/Conv variables by position (kernel, bias); the mask is
    stored after them so `.keras` files round-trip.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(
            name="mask", shape=self._kernel.shape, initializer="ones",
            trainable=False, dtype=self._kernel.dtype)
        self._kernel.constraint = _KeepMasked(self, self.kernel_constraint)

    def _apply_mask(self):
        self._kernel.assign(self._kernel * self.mask)

    def set_weights(self, weights):
        super().set_weights(weights)
        self._apply_mask()

    def _mask_index(self):
        return 2 if self.use_bias else 1

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.built:
            store[str(self._mask_index())] = self.mask

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.built:
            self.mask.assign(store[str(self._mask_index())])
            self._apply_mask()


@keras.saving.register_keras_serializable(package="tflth")
class MaskedDense(_MaskedMixin, keras.layers.Dense):
    """`keras.layers.Dense` with a pruning mask; same arguments."""


@keras.saving.register_keras_serializable(package="tflth")
class MaskedConv2D(_MaskedMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a pruning mask; same arguments."""


register_family(LayerFamily("masked", MaskedDense, MaskedConv2D))
