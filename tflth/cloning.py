"""A copy of a Keras model with some layers replaced: export (`tflth.export.strip`, the sparse
format), compaction (`tflth.pruning.compact`) and `tflth.bayes.to_deterministic` all build their
models this way, through Keras' own `clone_model`."""
import keras

from tflth import internals


def copy_variables(source, target, values):
    """Sets each variable of `target`, a layer built from `source`'s config, from the next variable
    of `source` of the same name and shape: the same variables in the same order, less those a
    family added to layers `source` holds (masks, gates, scales). `values` ({id(variable): array})
    overrides a variable's own value."""
    pending = list(source.weights)
    for variable in target.weights:
        while pending and (pending[0].name != variable.name or tuple(pending[0].shape) != tuple(variable.shape)):
            pending.pop(0)
        if not pending:
            raise ValueError(f"layer {source.name!r}: its copy holds {variable.path!r}, which it lacks")
        found = pending.pop(0)
        variable.assign(values.get(id(found), found))


def replace_layers(model, replace, gone=None, values=None):
    """A copy of a Functional or Sequential `model` (nested ones too) in which each layer is
    `replace(layer)`: (new layer, its weights), or None to copy the layer (built from its config)
    with its weights, `values` ({id(variable): array}) in place of some (e.g. the deployed kernels
    of prunable layers it holds). The weights are a list for `set_weights` or a function that
    sets them on the built layer. `gone(layer)` says which layers must not be left in the copy:
    clone_model copies a layer of your own whole, with the layers it holds (a ValueError names them)."""
    assigned = []

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):  # an operation on tensors (x + y, ops.*): no weights
            return layer.__class__.from_config(layer.get_config())
        made = replace(layer)
        if made is None:
            made = (layer.__class__.from_config(layer.get_config()),
                    lambda new: copy_variables(layer, new, values or {}))
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
