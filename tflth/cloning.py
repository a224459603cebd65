"""A copy of a Keras model with some layers replaced: export (`tflth.export.strip`, the sparse
format), compaction (`tflth.pruning.compact`) and `tflth.bayes.to_deterministic` all build their
models this way, through Keras' own `clone_model`."""
import keras


def replace_layers(model, replace):
    """A copy of a Functional or Sequential `model` (nested ones too) in which each layer is
    `replace(layer)`: (new layer, its weights), or None to copy the layer with its weights. The
    weights are a list for `set_weights` or a function that sets them on the built layer."""
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
        weights(new) if callable(weights) else new.set_weights(weights)
    return copy
