"""Keras 3 layers for sparse networks."""
from tflth.layers.bayesian import Conv2DFlipout, Conv2DReparameterization, DenseFlipout, DenseReparameterization
from tflth.layers._holder import family_variables
from tflth.layers.family import LayerFamily, get_family, register_family
from tflth.layers.l0 import L0Conv2D, L0Dense
from tflth.layers.masked import MaskedConv2D, MaskedDense
from tflth.layers.masked_kinds import (MaskedConv1D, MaskedConv2DTranspose, MaskedConv3D, MaskedDepthwiseConv2D,
                                       MaskedEinsumDense, MaskedEmbedding, MaskedSeparableConv2D)

__all__ = ["Conv2DFlipout", "Conv2DReparameterization", "DenseFlipout", "DenseReparameterization", "L0Conv2D",
           "L0Dense", "LayerFamily", "MaskedConv1D", "MaskedConv2D", "MaskedConv2DTranspose", "MaskedConv3D",
           "MaskedDense", "MaskedDepthwiseConv2D", "MaskedEinsumDense", "MaskedEmbedding", "MaskedSeparableConv2D",
           "family_variables", "get_family", "register_family"]
