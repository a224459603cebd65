"""A copy of a Keras model with some layers replaced: export (`tflth.export.strip`, the sparse
format), compaction (`tflth.pruning.compact`) and `tflth.bayes.to_deterministic` all build their
models this way, through Keras' own `clone_model`."""
import keras

from tflth import internals


def replace_layers(model, replace, gone=None):
    """A copy of a Functional or Sequential `model` (nested ones too) in which each layer is
    `replace(layer)`: (new layer, its weights), or None to copy the layer with its weights. The
    weights are a list for `set_weights` or a function that sets them on the built layer.
    `gone(layer)` says which layers must not be left in the copy: clone_model copies a layer of
    your own whole, with the layers it holds (a ValueError names them)."""
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
    left = [layer.name for layer in internals.all_layers(copy) if gone and gone(layer)]
    if left:
        raise ValueError(f"layers {left} sit inside a layer of your own, which Keras' clone_model copies whole; "
                         "build them into a Functional or Sequential model")
    for new, weights in assigned:
        weights(new) if callable(weights) else new.set_weights(weights)
    return copy
