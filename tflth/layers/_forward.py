"""The forward pass of Keras' Dense and Conv layers with a kernel (and bias) given.

Families that change the weights a step sees (L0 gates, targeted dropout, sampled
Bayesian weights) compute those weights and call this, so the rest of Keras' `call`
(matmul or convolution, bias, activation) is written once.
"""
from keras import ops


def linear(layer, inputs, kernel):
    """The matmul (dense) or convolution (conv) of a Keras Dense or Conv layer with `kernel`."""
    if len(kernel.shape) == 2:
        return ops.matmul(inputs, kernel)
    return layer.convolution_op(inputs, kernel)


def finish(layer, x, bias):
    """Adds `bias` (ignored when the layer has none) and applies the layer's activation."""
    if layer.use_bias:
        if len(x.shape) > 2 and getattr(layer, "data_format", "channels_last") != "channels_last":
            # Not ops.add: Keras 3.15's TensorFlow add turns a (1, C, 1, ...) bias into a bias_add over
            # the last axis whenever that axis also has C entries (keras.layers.Conv2D has the bug too).
            x = x + ops.reshape(bias, (1, -1) + (1,) * (len(x.shape) - 2))
        else:
            x = ops.add(x, bias)
    return layer.activation(x) if layer.activation is not None else x


def forward(layer, inputs, kernel, bias):
    """`layer.call(inputs)` of a Keras Dense or Conv layer, with `kernel` and `bias` in place
    of its own (bias is ignored when the layer has none)."""
    return finish(layer, linear(layer, inputs, kernel), bias)
