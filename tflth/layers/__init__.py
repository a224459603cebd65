"""Keras 3 layers for sparse networks."""
from tflth.layers.bayesian import Conv2DFlipout, Conv2DReparameterization, DenseFlipout, DenseReparameterization
from tflth.layers._holder import family_variables
from tflth.layers.family import LayerFamily, get_family, register_family
from tflth.layers.l0 import L0Conv2D, L0Dense
from tflth.layers.masked import MaskedConv2D, MaskedDense
from tflth.layers.prunable import FEATURES, Prunable, is_prunable

__all__ = ["FEATURES", "Conv2DFlipout", "Conv2DReparameterization", "DenseFlipout", "DenseReparameterization",
           "L0Conv2D", "L0Dense", "LayerFamily", "MaskedConv2D", "MaskedDense", "Prunable", "family_variables",
           "get_family", "is_prunable", "register_family"]
