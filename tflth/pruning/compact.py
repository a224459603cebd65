"""From a sparse network to a smaller plain Keras model: neurons and filters that cannot
change the output are removed, and the next layer's inputs with them.

A unit of a weighted layer (Dense or Conv2D, of any family) is removed when the next weighted
layer gives it only zero weights, or when all its weights are zero, so that it outputs a
constant whatever the input (its bias through its activation): a zero constant is dropped, a
non-zero one is folded into the next layer's bias where that is exact (a Dense layer, or a
convolution without zero padding) and the unit is kept otherwise. Each layer computes with its
*deployed* weights (`tflth.pruning.deployed_weights`: L0 gates at their test-time value,
Bayesian posterior means, pruned entries zero).
The model's inputs are kept whole (an input pixel no weight reads is a zero row of the first
kernel). Supported: chains of Dense, Conv2D, pooling, Flatten, activation and dropout
layers (the MLPs and LeNet / Conv-n networks of `tflth.models`); BatchNorm and branches are not.
"""
import dataclasses

import keras
import numpy as np

from tflth import internals
from tflth.cloning import replace_layers
from tflth.pruning.prunable import deployed_weights

_PASS_THROUGH = (keras.layers.InputLayer, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                 keras.layers.Activation, keras.layers.ReLU, keras.layers.Dropout, keras.layers.Flatten)


def is_weighted(layer):
    return isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))


_MIXING = ("softmax", "log_softmax")  # activations that are not elementwise


def _chain(model):
    layers = list(model.layers)
    last = max((i for i, layer in enumerate(layers) if is_weighted(layer)), default=0)
    for layer in layers[:last]:  # removing a unit changes what a softmax gives the others
        name = getattr(getattr(layer, "activation", None), "__name__", None)
        if name in _MIXING:
            raise ValueError(f"layer {layer.name!r}: its {name} activation mixes the units, so none can be removed; "
                             "compaction needs elementwise activations before the last weighted layer")
    for layer in layers:
        if not (is_weighted(layer) or isinstance(layer, _PASS_THROUGH)):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be compacted; supported: "
                             "Dense, Conv2D, pooling, Flatten, activation and dropout layers in a chain")
        calls = internals.call_sites(layer)
        if len(calls) > 1 or (calls and calls[0] > 1):
            raise ValueError(f"layer {layer.name!r} is not in a chain (it has several inputs or is reused)")
        if isinstance(layer, keras.layers.Conv2D) and layer.data_format != "channels_last":
            raise ValueError(f"layer {layer.name!r}: only channels_last convolutions can be compacted")
    return layers


def _constants(layers, bias):
    """What each unit of the first (weighted) layer outputs, through its activation and the
    pass-through layers up to the next weighted layer, when its kernel is all zero: its bias
    mapped elementwise (pooling, Flatten and evaluation-mode dropout keep a constant)."""
    x = np.asarray(bias, np.float32).reshape(1, -1)
    for layer in layers:
        if is_weighted(layer):
            x = layer.activation(x)
        elif isinstance(layer, (keras.layers.Activation, keras.layers.ReLU)):
            x = layer(x)
    return np.asarray(x).reshape(-1)


def _foldable(layer):
    """Whether a constant input channel of `layer` can be folded into its bias exactly: a Dense
    layer, or a convolution without zero padding (at a padded border the constant would be
    partly zero)."""
    return layer.use_bias and (isinstance(layer, keras.layers.Dense) or layer.padding == "valid")


@dataclasses.dataclass
class Plan:
    """What compaction keeps: for each weighted layer (by name) its deployed weights (biases with
    the removed constant units folded in), the indices of the input entries it reads and of the
    units it keeps, and its output positions."""
    weights: dict
    inputs: dict
    units: dict
    positions: dict


def plan(model):
    """Decides which units of every weighted layer survive (see the module docstring)."""
    layers = _chain(model)
    weighted = [layer for layer in layers if is_weighted(layer)]
    if not weighted:
        raise ValueError("model has no Dense or Conv2D layer to compact")
    weights = {layer.name: deployed_weights(layer) for layer in weighted}
    alive = {weighted[-1].name: np.ones(weights[weighted[-1].name][0].shape[-1], bool)}  # the logits stay
    for layer, after in zip(weighted, weighted[1:]):
        kernel, bias = weights[layer.name]
        units = kernel.shape[-1]
        still = np.all(kernel.reshape(-1, units) == 0, axis=0)  # outputs a constant whatever the input
        segment = layers[layers.index(layer):layers.index(after)]
        constant = np.where(still, _constants(segment, np.zeros(units) if bias is None else bias), 0.0)
        following = weights[after.name][0]
        rows = following.reshape(-1, units, following.shape[-1])  # (positions, units, outputs)
        used = np.any(rows != 0, axis=(0, 2))
        alive[layer.name] = used & ~(still & ((constant == 0) | _foldable(after)))
        if not alive[layer.name].any():  # Keras has no empty layer: one unit stays (it is zero or constant)
            alive[layer.name][0] = True
        gone = still & ~alive[layer.name]
        if np.any(constant[gone] != 0):  # a removed constant unit's share of the next layer, now its bias
            next_kernel, next_bias = weights[after.name]
            weights[after.name] = (next_kernel, next_bias + constant[gone] @ rows[:, gone].sum(axis=0))
    inputs, units, positions, kept = {}, {}, {}, None
    for layer in layers:
        if isinstance(layer, keras.layers.Flatten) and kept is not None:
            spatial = int(np.prod(layer.input.shape[1:-1]))
            channels = layer.input.shape[-1]
            kept = (np.arange(spatial)[:, None] * channels + kept[None, :]).reshape(-1)
        elif is_weighted(layer):
            fan_in = weights[layer.name][0].shape[-2]
            inputs[layer.name] = np.arange(fan_in) if kept is None else kept
            kept = units[layer.name] = np.flatnonzero(alive[layer.name])
            positions[layer.name] = int(np.prod(layer.output.shape[1:-1])) if layer.output.shape[1:-1] else 1
    return Plan(weights, inputs, units, positions)


def compact(model, name=None):
    """A plain Keras model (Dense, Conv2D, ...) without the removed units, whose outputs equal
    `model`'s in evaluation mode. Raises ValueError for architectures it cannot compact."""
    p = plan(model)

    def smaller(layer):
        if not is_weighted(layer):
            return None
        kernel, bias = p.weights[layer.name]
        kernel = np.take(np.take(kernel, p.inputs[layer.name], axis=-2), p.units[layer.name], axis=-1)
        common = dict(activation=layer.activation, use_bias=layer.use_bias, name=layer.name)
        if kernel.ndim == 2:
            new = keras.layers.Dense(kernel.shape[-1], **common)
        else:
            new = keras.layers.Conv2D(kernel.shape[-1], layer.kernel_size, strides=layer.strides,
                                      padding=layer.padding, dilation_rate=layer.dilation_rate, **common)
        return new, [kernel] + ([bias[p.units[layer.name]]] if layer.use_bias else [])

    copy = replace_layers(model, smaller)  # a chain: one input, one output (`plan` checked)
    return keras.Model(copy.inputs[0], copy.outputs[0], name=name or f"{model.name}_compact")
