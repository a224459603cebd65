"""Dense and Conv2D layers whose kernel carries a binary pruning mask.

The mask is a non-trainable weight. A pruned weight stays exactly 0.0:
the forward pass multiplies by the mask, and a kernel constraint multiplies by
it again after every optimizer step, so momentum or Adam state cannot bring a
pruned weight back and checkpoints hold true zeros.
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

    def _build_mask(self):
        self.mask = self.add_weight(
            name="mask", shape=self._kernel.shape, initializer="ones",
            trainable=False, dtype=self._kernel.dtype)
        self._kernel.constraint = _KeepMasked(self, self.kernel_constraint)

    @property
    def masked_kernel(self):
        return self.kernel * ops.cast(self.mask, self.kernel.dtype)

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


@keras.saving.register_keras_serializable(package="tflth")
class MaskedDense(_MaskedMixin, keras.layers.Dense):
    """`keras.layers.Dense` with a pruning mask; same arguments."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_mask()

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.masked_kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x


@keras.saving.register_keras_serializable(package="tflth")
class MaskedConv2D(_MaskedMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a pruning mask; same arguments."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_mask()

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * ops.cast(self.mask, kernel.dtype))


register_family(LayerFamily("masked", MaskedDense, MaskedConv2D))
