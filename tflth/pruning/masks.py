"""Reading and writing the masks of a model's prunable layers."""
import numpy as np

from tflth import internals
from tflth.pruning.prunable import is_prunable


def prunable_layers(model):
    """The prunable layers (tflth.pruning.Prunable), in model order (nested models included)."""
    return [layer for layer in internals.all_layers(model) if is_prunable(layer)]


def get_masks(model):
    """{layer name: float32 array of 0/1}."""
    return {layer.name: layer.mask.numpy().astype(np.float32) for layer in prunable_layers(model)}


def set_masks(model, masks):
    """Installs masks (all checked before any is written) and zeroes pruned weights."""
    layers = {layer.name: layer for layer in prunable_layers(model)}
    unknown = sorted(set(masks) - set(layers))
    if unknown:
        raise ValueError(f"masks name layers {unknown} that are not prunable layers of the model; "
                         f"allowed: {sorted(layers)}")
    checked = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=np.float32)
        shape = tuple(layers[name].mask.shape)
        if mask.shape != shape:
            raise ValueError(f"masks[{name!r}] has shape {mask.shape}; the layer's kernel has shape {shape}")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"masks[{name!r}] must hold only 0 and 1")
        checked[name] = mask
    for name, mask in checked.items():
        layers[name].mask.assign(mask)
        apply_mask(layers[name])


def apply_mask(layer):
    """Zeroes the pruned entries of the kernel variable itself."""
    layer.apply_mask()


def sparsity(model):
    """{layer name: fraction pruned, ..., "total": fraction of all prunable weights pruned}."""
    out, pruned, size = {}, 0, 0
    for name, mask in get_masks(model).items():
        out[name] = 1.0 - float(mask.mean())
        pruned += mask.size - int(mask.sum())
        size += mask.size
    out["total"] = pruned / size if size else 0.0
    return out
