"""From L0 gates to a sparse network (Louizos, Welling & Kingma 2018).

    tflth.l0.masks_from_gates(model)   # closed test-time gates -> masks (prune like any masked model)
    tflth.l0.architecture(model)       # "266-88-33", % weights kept, FLOPs
    tflth.l0.compact(model)            # a plain Keras model without the removed neurons / filters
"""
import dataclasses

import numpy as np

from tflth.layers.l0 import L0Conv2D, L0Dense
from tflth.ops import hard_concrete as hc
from tflth.pruning import compact as _compact
from tflth.pruning import flops
from tflth.pruning.masks import prunable_layers, set_masks
from tflth.pruning.prunable import Prunable, deployed_weights

__all__ = ["Architecture", "LayerReport", "architecture", "compact", "gate_layers", "masks_from_gates"]


def gate_layers(model):
    """The model's L0 layers, in order."""
    return [layer for layer in prunable_layers(model) if isinstance(layer, (L0Dense, L0Conv2D))]


def _check(model):
    layers = gate_layers(model)
    if not layers:
        raise ValueError("model has no L0 layers (build it with family='l0', or use tflth.layers.L0Dense)")
    return layers


def masks_from_gates(model):
    """Clears the mask of every weight whose test-time gate is 0 (masks only shrink); returns
    the new masks {layer name: array}. The layers keep computing with their gates, so the
    model's evaluation outputs do not change."""
    masks = {}
    for layer in _check(model):
        closed = np.asarray(hc.deterministic(layer.log_alpha, layer.gamma, layer.zeta)) == 0
        masks[layer.name] = np.asarray(layer.mask) * ~np.broadcast_to(closed, layer.mask.shape)
    set_masks(model, masks)
    return masks


def compact(model, name=None):
    """A plain Keras model without the neurons and filters the gates removed; same evaluation
    outputs. Pixels the first layer's input gates closed remain as zero rows (the model still
    takes whole images). See `tflth.pruning.compact`."""
    _check(model)
    return _compact.compact(model, name)


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One layer of an `Architecture`: what is kept of its inputs, units and weights, and its FLOPs."""
    name: str
    kind: str            # "dense" or "conv"
    inputs: int          # input neurons / channels used, of `inputs_total`
    inputs_total: int
    units: int           # output neurons / filters kept, of `units_total`
    units_total: int
    weights: int         # non-zero deployed weights, of `weights_total`
    weights_total: int
    flops: int           # 2 x non-zero weights x output positions
    expected_flops: float  # the same with each gate's P(z != 0): what training pays on average


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What remains of a network after pruning, layer by layer (`architecture(model)`); str() is
    a short report."""
    layers: tuple

    @property
    def neurons(self):
        """The paper's notation (Louizos et al. 2018, Tables 1-2): filters kept for convs, input
        neurons used for dense layers, e.g. "266-88-33" for LeNet-300-100, "9-18-65-25" for LeNet-5."""
        return "-".join(str(r.units if r.kind == "conv" else r.inputs) for r in self.layers)

    @property
    def original(self):
        return "-".join(str(r.units_total if r.kind == "conv" else r.inputs_total) for r in self.layers)

    @property
    def weights_kept(self):
        """% of the kernels' weights that are non-zero in the deployed network."""
        return 100.0 * sum(r.weights for r in self.layers) / sum(r.weights_total for r in self.layers)

    @property
    def flops(self):
        return sum(r.flops for r in self.layers)

    @property
    def expected_flops(self):
        return sum(r.expected_flops for r in self.layers)

    def to_dict(self):
        return {"neurons": self.neurons, "original": self.original, "weights_kept": self.weights_kept,
                "flops": self.flops, "expected_flops": self.expected_flops,
                "layers": [dataclasses.asdict(r) for r in self.layers]}

    def __str__(self):
        lines = [f"architecture {self.neurons} (of {self.original}), {self.weights_kept:.2f}% of weights kept, "
                 f"{self.flops:,} FLOPs per example (expected in training: {self.expected_flops:,.0f})"]
        for r in self.layers:
            lines.append(f"  {r.name:<10} {r.kind:<5} inputs {r.inputs}/{r.inputs_total} units {r.units}/"
                         f"{r.units_total} weights {r.weights}/{r.weights_total}")
        return "\n".join(lines)


def _weights_only(model):
    """`architecture` of a model `compact` cannot plan: the non-zero deployed weights per layer."""
    reports = []
    for layer in prunable_layers(model):
        kernel = deployed_weights(layer)[0]
        nonzero, positions = int(np.count_nonzero(kernel)), flops.positions(layer) or 0
        reports.append(LayerReport(
            name=layer.name, kind="dense" if kernel.ndim == 2 else "conv", inputs=kernel.shape[-2],
            inputs_total=kernel.shape[-2], units=kernel.shape[-1], units_total=kernel.shape[-1], weights=nonzero,
            weights_total=int(kernel.size), flops=2 * nonzero * positions,
            expected_flops=2 * _expected_weights(layer) * positions))
    return Architecture(tuple(reports))


def _expected_weights(layer):
    """sum over the layer's unpruned weights of P(z != 0) of the gate that switches them."""
    if not isinstance(layer, (L0Dense, L0Conv2D)):  # every weight its mask keeps; a plain layer's every weight
        return float(np.asarray(layer.mask).sum()) if isinstance(layer, Prunable) else float(np.prod(layer.kernel.shape))
    return float((layer.inclusion_probability() * np.asarray(layer.mask)).sum())


def architecture(model):
    """What remains of `model` once its gates (or masks) have removed weights and units: an
    `Architecture` whose str() is a short report. Units and inputs are removed in the chain
    models `compact` supports; in any other model (residual connections, BatchNorm) only
    weights are, and every unit is counted as kept."""
    try:
        plan = _compact.plan(model)
    except ValueError:  # not a chain: no unit can be removed
        return _weights_only(model)
    reports = []
    for layer in model.layers:
        if layer.name not in plan.units:
            continue
        kernel = plan.weights[layer.name][0]
        ins, outs = plan.inputs[layer.name], plan.units[layer.name]
        kept = np.take(np.take(kernel, ins, axis=-2), outs, axis=-1)
        nonzero, positions = int(np.count_nonzero(kept)), plan.positions[layer.name]
        if kernel.ndim == 2:  # inputs a dense layer reads: those with a non-zero row
            rows = np.any(kernel.reshape(kernel.shape[0], -1)[ins][:, outs] != 0, axis=1)
            used = int(rows.sum())
        else:
            used = len(ins)
        reports.append(LayerReport(
            name=layer.name, kind="dense" if kernel.ndim == 2 else "conv", inputs=used,
            inputs_total=kernel.shape[-2], units=len(outs), units_total=kernel.shape[-1], weights=nonzero,
            weights_total=int(kernel.size), flops=2 * nonzero * positions,
            expected_flops=2 * _expected_weights(layer) * positions))
    return Architecture(tuple(reports))
