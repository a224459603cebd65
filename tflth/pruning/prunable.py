"""What tflth's pruning asks of a layer: the interface every prunable layer kind implements.

A prunable layer (masked, L0, Bayesian, or one you write) is a Keras layer with:
- `kernel`: the weights that are pruned, and scored (`tflth.pruning.scores`);
- `mask`: a non-trainable 0/1 variable of the kernel's shape; a 0 removes that weight for good;
- `deterministic_weights()`: (kernel, bias) the layer computes with in evaluation (masked:
  kernel * mask; L0: times the test-time gates; Bayesian: the posterior mean times the prior's
  multiplier); export, compaction, the magnitude score and the weights-kept counts read them
  through `deployed_weights`;
- `apply_mask()`: makes the pruned weights zero in its variables after the mask changed;
- `features`: which of `FEATURES` the kind supports; a call that needs one it lacks is refused
  with one line naming the layers (`require`);
- `training_matmuls`: matmuls (or convolutions) of the kernel's shape in one training forward
  pass (`tflth.pruning.flops`);
- `inclusion_probability()`: the probability that each weight is in the network (L0: P(gate
  != 0); a spike-and-slab prior: P(z = 1)) as a numpy array, None for a kind that has none (the "inclusion"
  score); `prior_variables`: the variational prior's variables by name (Bayesian layers; the
  scores of `tflth.pruning.scores` read them), empty elsewhere.

`tflth.layers.MaskedDense` and `MaskedConv2D` implement it; L0 and Bayesian layers build on them
and declare fewer features. It lives in `tflth.pruning`, below the layers (which import it), so
that pruning needs no layer module. A kind that declares "straight_through" honours a
`straight_through` attribute (`tflth.pruning.straight_through` sets it).
"""
import math
import types

import numpy as np

# Everything a kind may support beyond being pruned, and what it means.
FEATURES = {
    "straight_through": "a straight-through mode: the kernel keeps its dense values, the forward pass reads "
                        "kernel * mask (tflth.pruning.straight_through)",
    "targeted_dropout": "targeted dropout of the kernel in training (Gomez et al. 2019)",
    "kernel_is_weights": "computes with kernel * mask alone, so changing the kernel changes the function "
                         "(SET and RigL drop and grow kernel entries)",
}
"""What a prunable layer kind may support beyond being pruned (`Prunable.features`), and what it means."""


class Prunable:
    """The base of prunable layers (a mixin before the Keras layer class). See the module doc."""

    features = frozenset()
    kind = "prunable"  # how errors name this kind of layer ("masked", "L0", "Bayesian")
    training_matmuls = 1
    prior_variables = types.MappingProxyType({})

    def inclusion_probability(self):
        return None

    def positions(self):
        """How many times per example each kernel weight multiplies an input (`tflth.pruning.flops`):
        the output positions, 1 for a Dense layer on a vector, H x W for a Conv2D; None where the
        output shape is unknown (a layer of a subclassed model never called symbolically, or
        images of no fixed size). Kinds whose kernel maps inputs to outputs otherwise override it."""
        size = _known_size(self, "output")
        return None if size is None else size // int(self.kernel.shape[-1])

    def deterministic_weights(self):
        raise NotImplementedError(f"{type(self).__qualname__} must define deterministic_weights()")

    def apply_mask(self):
        raise NotImplementedError(f"{type(self).__qualname__} must define apply_mask()")


def _known_size(layer, end):
    """The number of entries per example of the layer's "input" or "output" (its first), None where
    a dimension is unknown. A layer never called on a symbolic input (one a layer of your own
    holds) answers from the input shape it was built for."""
    try:
        shape = getattr(layer, end).shape
    except (AttributeError, ValueError):
        built = (layer.get_build_config() or {}).get("input_shape")
        if built is None:
            return None
        shape = built if end == "input" else layer.compute_output_shape(built)
    shape = tuple(shape[1:])
    return None if any(d is None for d in shape) else math.prod(int(d) for d in shape)


def deployed_weights(layer):
    """(kernel, bias) as numpy arrays, the weights `layer` computes with in evaluation: a prunable
    layer's `deterministic_weights()` with its pruned entries exactly zero, another layer's kernel
    and bias (None without one)."""
    if isinstance(layer, Prunable):
        kernel, bias = layer.deterministic_weights()
        kernel = np.asarray(kernel)
        kernel = kernel * np.asarray(layer.mask, dtype=kernel.dtype)
    else:
        kernel, bias = np.asarray(layer.kernel), layer.bias
    return kernel, None if bias is None else np.asarray(bias)


def is_prunable(layer):
    """Whether `layer` is a built prunable layer."""
    return isinstance(layer, Prunable) and layer.built


def check_options(cls, straight_through=False, targeted_dropout=0.0):
    """A one-line ValueError for a layer option that the kind `cls` does not support."""
    if straight_through and "straight_through" not in cls.features:
        raise ValueError(f"straight_through={straight_through!r}: {cls.kind} layers have no straight-through mode "
                         "(their forward pass is their own); allowed: False")
    if targeted_dropout and "targeted_dropout" not in cls.features:
        raise ValueError(f"targeted_dropout={targeted_dropout!r}: {cls.kind} layers do not apply targeted dropout; "
                         "allowed: 0")


def require(layers, feature, who):
    """`layers`, or a ValueError naming those whose kind lacks `feature` (one of FEATURES)."""
    lacking = [layer.name for layer in layers if feature not in layer.features]
    if lacking:
        raise ValueError(f"{who}: layers {lacking} do not support {feature} ({FEATURES[feature]})")
    return layers
