"""From a model of tflth layers to a plain Keras 3 model that needs nothing but Keras.

Every prunable layer (`tflth.pruning.Prunable`: masked, L0 and Bayesian layers) becomes the Keras
layer it extends (`Dense`, `Conv2D`, `EinsumDense`, ...) holding the weights it computes with in
evaluation (its *deployed* weights, `tflth.pruning.deployed_weights`): the masked kernel, the
kernel times its L0 gates at their test-time value, or the posterior mean times the prior's
multiplier. Other layers are
copied. Regularizers and constraints are dropped (a deployed model does not train, and a
tflth regularizer in its config would need tflth to load).
"""
import inspect

import keras

from tflth import internals
from tflth.cloning import copy_variables, replace_layers
from tflth.pruning.masks import prunable_layers
from tflth.pruning.prunable import deployed_weights, is_prunable

_DROPPED = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
            "bias_constraint", "depthwise_regularizer", "pointwise_regularizer", "depthwise_constraint",
            "pointwise_constraint", "embeddings_regularizer", "embeddings_constraint")


_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _plain_class(layer):
    """Keras' own class that a prunable layer extends (Dense for MaskedDense, L0Dense, DenseFlipout),
    and the configuration keys it takes."""
    cls = next(c for c in type(layer).__mro__ if c.__module__.startswith("keras."))
    if cls is keras.layers.Layer:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__qualname__}) cannot be exported: it extends no "
                         "Keras layer with weights")
    keys = set(inspect.signature(cls.__init__).parameters) | set(keras.layers.Layer().get_config())
    return cls, keys


def strip(model):
    """A plain Keras model (no tflth classes) whose outputs equal `model`'s in evaluation mode:
    masks folded into the kernels, L0 gates at their test-time value, Bayesian layers replaced by
    their pruned posterior means."""
    # Every prunable layer's deployed kernel (and bias), by the variable it replaces: copied into the
    # plain layer that replaces it, and into the plain copies of prunable layers a layer of your own
    # holds (MultiHeadAttention's projections come back plain from its config).
    deployed = {}
    for layer in prunable_layers(model):
        kernel, bias = deployed_weights(layer)
        deployed[id(internals.kernel_variable(layer))] = kernel
        if bias is not None:
            deployed[id(layer.bias)] = bias

    def strip_layer(layer):
        if not is_prunable(layer):
            return None
        cls, keys = _plain_class(layer)
        if cls in _CONVS and layer.data_format == "channels_first" and layer.use_bias:
            # Keras 3.15's Conv layers add such a bias on the wrong axis when width == filters
            # (tflth/layers/_forward.py works around it; a plain Keras layer cannot).
            raise ValueError(f"layer {layer.name!r}: a channels_first {cls.__name__} with a bias cannot be exported "
                             f"as Keras' own {cls.__name__}; build the model channels_last")
        config = {k: v for k, v in layer.get_config().items() if k in keys and k not in _DROPPED}
        return cls.from_config(config), lambda new: copy_variables(layer, new, deployed)

    return replace_layers(model, strip_layer, gone=is_prunable, values=deployed)
