"""Keras 3 layers for sparse networks."""
from tflth.layers.family import LayerFamily, get_family, register_family
from tflth.layers.masked import MaskedConv2D, MaskedDense

__all__ = ["LayerFamily", "MaskedConv2D", "MaskedDense", "get_family", "register_family"]
