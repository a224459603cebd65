"""Masked versions of Keras' other layers with a kernel: Conv1D, Conv3D, DepthwiseConv2D,
SeparableConv2D, Conv2DTranspose, EinsumDense and Embedding (`tflth.sparsify` puts them in a model
of your own). Each takes its Keras layer's arguments, is filed where Keras files that layer (so
weight files load across plain and masked models), keeps its mask under its own key, and holds
true zeros in its kernel, as `tflth.layers.MaskedDense` does (tflth/layers/masked.py says how).

Conv1D and Conv3D have every option of MaskedConv2D (targeted dropout, straight-through). The
others run Keras' own `call` on the masked kernel and support pruning and dynamic sparse training
(SET, RigL), not those options. A SeparableConv2D has two kernels: its `kernel` is the pointwise
one, and its depthwise kernel is pruned as a prunable layer of its own, `<name>_depthwise`
(`layer.depthwise_layer`), with its own mask. An Embedding's kernel is its embeddings matrix.
"""
import math
import weakref

import keras
from keras import ops

from tflth import internals
from tflth.layers.family import LayerFamily, register_family
from tflth.layers.masked import MaskedConv2D, MaskedDense, _KeepMasked, _MaskedKernel, _MaskedMixin, _MaskHolder
from tflth.pruning.prunable import Prunable, _known_size


def _masked(keras_cls, prefix, base=_MaskedKernel):
    """Decorator: the class filed as `keras_cls`, registered as tflth>Masked<Keras name>."""
    def make(cls):
        cls._default_prefix = prefix
        cls.__doc__ = cls.__doc__ or (f"`keras.layers.{keras_cls.__name__}` with a pruning mask; its arguments "
                                      "(see tflth/layers/masked_kinds.py).")
        cls = keras.saving.register_keras_serializable(package="tflth", name=cls.__name__)(cls)
        return internals.filed_as(keras_cls)(cls)
    return make


@_masked(keras.layers.Conv1D, "masked_conv1d")
class MaskedConv1D(_MaskedMixin, keras.layers.Conv1D):
    """`keras.layers.Conv1D` with a pruning mask; the arguments of MaskedConv2D."""


@_masked(keras.layers.Conv3D, "masked_conv3d")
class MaskedConv3D(_MaskedMixin, keras.layers.Conv3D):
    """`keras.layers.Conv3D` with a pruning mask; the arguments of MaskedConv2D."""


@_masked(keras.layers.DepthwiseConv2D, "masked_depthwise_conv2d")
class MaskedDepthwiseConv2D(_MaskedKernel, keras.layers.DepthwiseConv2D):
    def positions(self):
        # Each weight of the (h, w, channels, multiplier) kernel makes one output channel.
        size = _known_size(self, "output")
        return None if size is None else size // (int(self.kernel.shape[-2]) * int(self.kernel.shape[-1]))


@_masked(keras.layers.Conv2DTranspose, "masked_conv2d_transpose")
class MaskedConv2DTranspose(_MaskedKernel, keras.layers.Conv2DTranspose):
    def positions(self):
        # The (h, w, filters, in channels) kernel is applied at every input position.
        size = _known_size(self, "input")
        return None if size is None else size // int(self.kernel.shape[-1])


@_masked(keras.layers.EinsumDense, "masked_einsum_dense")
class MaskedEinsumDense(_MaskedKernel, keras.layers.EinsumDense):
    def positions(self):
        # A weight is used once per input entry that its input-side indices do not fix (the
        # output shape may hold None where `output_shape` did).
        size = _known_size(self, "input")
        if size is None:
            return None
        inputs, kernel_letters = self.equation.split("->")[0].split(",")
        read = math.prod(int(dim) for letter, dim in zip(kernel_letters, self.kernel.shape) if letter in inputs)
        return size // read


@_masked(keras.layers.Embedding, "masked_embedding")
class MaskedEmbedding(_MaskedKernel, keras.layers.Embedding):
    """`keras.layers.Embedding` with a pruning mask over its embeddings matrix (its `kernel`); its
    arguments. A pruned entry reads as 0 in the looked-up vectors."""

    bias = None  # an embedding has none

    @property
    def kernel(self):
        return self.embeddings

    def positions(self):
        return 0  # a lookup: no multiplications (flops counts none)


class _DepthwiseMask(Prunable, _MaskHolder):
    """The mask of a SeparableConv2D's depthwise kernel, a prunable layer of its own named
    `<layer>_depthwise`; its `kernel` is its owner's depthwise kernel (held by a weak reference,
    so Keras neither saves it twice nor walks back up to the owner)."""

    features = frozenset({"kernel_is_weights"})
    kind = "masked"
    straight_through = False
    bias = None

    def __init__(self, owner):
        kernel = owner.depthwise_kernel
        super().__init__(kernel.shape, kernel.dtype, on_load=self.apply_mask, name=f"{owner.name}_depthwise")
        self._owner = weakref.ref(owner)
        kernel.constraint = _KeepMasked(self, kernel.constraint)

    @property
    def kernel(self):
        return self._owner().depthwise_kernel

    @property
    def mask(self):
        return self.variable

    def deterministic_weights(self):
        return self.kernel * ops.cast(self.mask, self.kernel.dtype), None

    def apply_mask(self):
        self.kernel.assign(self.kernel * self.mask)

    def positions(self):
        return self._owner().positions()  # the depthwise outputs sit where the 1x1 pointwise outputs do


@_masked(keras.layers.SeparableConv2D, "masked_separable_conv2d")
class MaskedSeparableConv2D(_MaskedKernel, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with a pruning mask on each kernel; its arguments. Its `kernel`
    and `mask` are the pointwise kernel's; `depthwise_layer` prunes the depthwise kernel."""

    @property
    def kernel(self):
        return self.pointwise_kernel

    def build(self, input_shape):
        super().build(input_shape)
        self.depthwise_layer = _DepthwiseMask(self)


MORE = {keras.layers.Conv1D: MaskedConv1D, keras.layers.Conv3D: MaskedConv3D,
        keras.layers.DepthwiseConv2D: MaskedDepthwiseConv2D, keras.layers.SeparableConv2D: MaskedSeparableConv2D,
        keras.layers.Conv2DTranspose: MaskedConv2DTranspose, keras.layers.EinsumDense: MaskedEinsumDense,
        keras.layers.Embedding: MaskedEmbedding}
"""The masked class of each Keras layer kind beyond Dense and Conv2D."""

register_family(LayerFamily("masked", MaskedDense, MaskedConv2D, more=MORE))
