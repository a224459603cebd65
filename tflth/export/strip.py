"""From a model of tflth layers to a plain Keras 3 model that needs nothing but Keras.

Every prunable layer (`tflth.pruning.Prunable`: masked, L0 and Bayesian layers) becomes Keras' own
`Dense` / `Conv2D` holding the weights it computes with in evaluation (its *deployed* weights,
`tflth.pruning.compact.deployed_weights`): the masked kernel, the kernel times its L0 gates at
their test-time value, or the posterior mean times the prior's multiplier. Other layers are
copied. Regularizers and constraints are dropped (a deployed model does not train, and a
tflth regularizer in its config would need tflth to load).
"""
import keras
import numpy as np

from tflth.pruning.compact import deployed_weights
from tflth.pruning.masks import is_prunable

_DROPPED = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
            "bias_constraint")
_PLAIN = ((keras.layers.Conv2D, lambda: keras.layers.Conv2D(1, 1)), (keras.layers.Dense, lambda: keras.layers.Dense(1)))


def _plain_class(layer):
    """Keras' own class for a Dense or Conv2D layer of any family (None for other layers)."""
    for cls, example in _PLAIN:
        if isinstance(layer, cls):
            return cls, set(example().get_config())
    return None, None


def deployed(layer):
    """(kernel, bias) of a layer with a kernel, as numpy, pruned entries exactly zero."""
    kernel, bias = deployed_weights(layer)
    if is_prunable(layer):
        kernel = kernel * np.asarray(layer.mask, dtype=kernel.dtype)
    return kernel, bias


def replace_layers(model, replace):
    """A copy of a Functional or Sequential `model` (nested ones too) in which each layer is
    `replace(layer)`: (new layer, weights to give it once built), or None to copy the layer."""
    assigned = []

    def clone(layer):
        made = replace(layer)
        if made is None:
            made = (layer.__class__.from_config(layer.get_config()), layer.get_weights())
        assigned.append(made)
        return made[0]

    try:
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ValueError as e:
        raise ValueError(f"model {model.name!r} cannot be copied layer by layer: {str(e).splitlines()[0]}") from None
    for new, weights in assigned:
        new.set_weights(weights)
    return copy


def _strip_layer(layer):
    if not is_prunable(layer):
        return None
    cls, keys = _plain_class(layer)
    if cls is None:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__qualname__}) cannot be exported: only Dense "
                         "and Conv2D layers of a tflth family are supported")
    if cls is keras.layers.Conv2D and layer.data_format == "channels_first" and layer.use_bias:
        # Keras 3.15's Conv2D adds such a bias on the wrong axis when width == filters
        # (tflth/layers/_forward.py works around it; a plain Keras layer cannot).
        raise ValueError(f"layer {layer.name!r}: a channels_first Conv2D with a bias cannot be exported as Keras' "
                         "own Conv2D; build the model channels_last")
    config = {k: v for k, v in layer.get_config().items() if k in keys and k not in _DROPPED}
    kernel, bias = deployed(layer)
    return cls.from_config(config), [kernel] + ([bias] if layer.use_bias else [])


def strip(model):
    """A plain Keras model (no tflth classes) whose outputs equal `model`'s in evaluation mode:
    masks folded into the kernels, L0 gates at their test-time value, Bayesian layers replaced by
    their pruned posterior means."""
    return replace_layers(model, _strip_layer)
