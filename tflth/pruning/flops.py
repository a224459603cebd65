"""Training FLOPs, counted analytically from the masks, as RigL's paper counts them (Evci et
al. 2020, Appendix H): a training step costs three forward passes (the forward pass, the
gradient with respect to the activations and with respect to the weights), and a forward
pass costs 2 FLOPs (a multiply and an add) per weight and output position of every matmul or
convolution. Two counts:

- sparse: only the weights a mask keeps, what a sparse kernel would execute (RigL's count);
- dense: every weight, what tflth's dense kernels execute whatever the mask.

A layer declares how many matmuls of its kernel's shape one training forward pass takes
(`training_matmuls`: 1; Flipout and local reparameterisation 2). Counted: the prunable
layers' matmuls and convolutions. Not counted: biases, activations, normalisation and
pooling, and the O(weights) work per step of drawing Bayesian noise, KL terms and L0 gates,
which does not grow with the batch (wall and CPU seconds measure it), and the extra passes of
scores that read the loss gradient: SNIP's once, RigL's one dense gradient of a batch per
update (RigL's paper charges (3 f_S dT + 2 f_S + f_D) / (dT + 1) per step; with dT = 100 up to
3T/4 that adds about 5%, 13% and 25% to RigL's count at 5, 2 and 1% kept).
"""
import math

import numpy as np

from tflth.pruning.masks import prunable_layers

PASSES_PER_STEP = 3  # forward, backward to the activations, backward to the weights


def positions(layer):
    """Output positions per example that each kernel weight is used at (`Prunable.positions`):
    1 for Dense on a vector, H x W for a Conv2D; None where the layer's output shape is unknown."""
    return layer.positions()


def forward_flops(model):
    """{"sparse", "dense"}: the FLOPs of one training forward pass of one example through the
    prunable layers (None for both where a layer's output shape is unknown)."""
    sparse = dense = 0
    for layer in prunable_layers(model):
        per_weight = positions(layer)
        if per_weight is None:
            return {"sparse": None, "dense": None}
        per_weight *= 2 * layer.training_matmuls
        sparse += per_weight * int(np.count_nonzero(layer.mask.numpy()))
        dense += per_weight * math.prod(layer.kernel.shape)
    return {"sparse": sparse, "dense": dense}


def step_flops(forward, batch_size):
    """The FLOPs of one training step of `batch_size` examples, given `forward_flops`' count."""
    return None if forward is None else PASSES_PER_STEP * batch_size * forward
