"""A child layer that owns variables a Keras Dense/Conv layer cannot save as its own.

Keras checks that a Dense/Conv2D entry in a weights file holds exactly kernel and bias, so a
family's extra variables (L0 gates, a posterior's scales, a prior's parameters) live in a child
layer, saved under its own path. A file without them (a plain or masked model's) leaves them as
they are.
"""
import keras

from tflth import internals


class VariableHolder(keras.layers.Layer):
    """`specs`: {name: keyword arguments of `add_weight`}; the variables are `holder.v[name]`."""

    def __init__(self, specs, **kwargs):
        super().__init__(**kwargs)
        # autocast=False: under mixed precision a family computes gates, posteriors and priors
        # from float32 parameters (what their numerics need) and casts only the weights it makes.
        self.v = {name: self.add_weight(name=name, autocast=False, **spec) for name, spec in specs.items()}
        self.built = True

    def load_own_variables(self, store):
        if len(store.keys()):
            super().load_own_variables(store)


def family_variables(model):
    """The trainable variables of every family's holder in `model` (not kernels or biases)."""
    return [v for layer in internals.all_layers(model)
            if isinstance(layer, VariableHolder) for v in layer.trainable_variables]
