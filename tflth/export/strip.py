"""From a model of tflth layers to a plain Keras 3 model that needs nothing but Keras.

Every prunable layer (`tflth.pruning.Prunable`: masked, L0 and Bayesian layers) becomes Keras' own
`Dense` / `Conv2D` holding the weights it computes with in evaluation (its *deployed* weights,
`tflth.pruning.deployed_weights`): the masked kernel, the kernel times its L0 gates at
their test-time value, or the posterior mean times the prior's multiplier. Other layers are
copied. Regularizers and constraints are dropped (a deployed model does not train, and a
tflth regularizer in its config would need tflth to load).
"""
import keras

from tflth.cloning import replace_layers
from tflth.pruning.prunable import deployed_weights, is_prunable

_DROPPED = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
            "bias_constraint")
_PLAIN = ((keras.layers.Conv2D, lambda: keras.layers.Conv2D(1, 1)), (keras.layers.Dense, lambda: keras.layers.Dense(1)))


def _plain_class(layer):
    """Keras' own class for a Dense or Conv2D layer of any family (None for other layers)."""
    for cls, example in _PLAIN:
        if isinstance(layer, cls):
            return cls, set(example().get_config())
    return None, None


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
    kernel, bias = deployed_weights(layer)
    return cls.from_config(config), [kernel] + ([bias] if layer.use_bias else [])


def strip(model):
    """A plain Keras model (no tflth classes) whose outputs equal `model`'s in evaluation mode:
    masks folded into the kernels, L0 gates at their test-time value, Bayesian layers replaced by
    their pruned posterior means."""
    return replace_layers(model, _strip_layer, gone=is_prunable)
