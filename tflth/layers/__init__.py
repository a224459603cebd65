"""Keras 3 layers for sparse networks."""
from tflth.layers.family import LayerFamily, get_family, register_family
from tflth.layers.l0 import L0Conv2D, L0Dense
from tflth.layers.masked import MaskedConv2D, MaskedDense

__all__ = ["L0Conv2D", "L0Dense", "LayerFamily", "MaskedConv2D", "MaskedDense", "get_family", "register_family"]
