"""Scores from the gradient of the loss: SNIP and first-order Taylor.

They need the whole model, a loss and data, so each scores every layer at once from one
backward pass per batch (`register_score(..., per_model=True)`): `prune(model, ...,
score="snip", data=(x, y))`. The gradient is taken with respect to each layer's `kernel`, the
variable its forward pass reads (pruned entries hold 0 there, and their gradient is the dense
one), with the model in inference mode (`training=False`: Bayesian layers use their means, no
dropout), so a score is a deterministic function of weights and data.
"""
import keras
import numpy as np
import tensorflow as tf

from tflth.arguments import is_integer
from tflth.pruning.scores import register_score


def _batches(data, batches, score):
    """(x, y) arrays are one batch (x: a list of arrays for several inputs); an iterable of (x, y)
    batches (a tf.data.Dataset) gives its first `batches`."""
    if data is None:
        raise ValueError(f"score {score!r} needs data: pass data=(x, y) (one batch) or a dataset of (x, y) batches")
    if not (is_integer(batches) and batches >= 1):
        raise ValueError(f"batches={batches!r} must be an integer >= 1")
    # One batch: (x, y) arrays, x a list of arrays for a model of several inputs.
    if isinstance(data, (tuple, list)) and data and (hasattr(data[0], "shape") or
                                                     (len(data) == 2 and hasattr(data[1], "shape"))):
        if len(data) != 2:
            raise ValueError(f"score {score!r}: data holds {len(data)} arrays; expected (x, y)")
        if batches != 1:
            raise ValueError(f"batches={batches}: data=(x, y) is one batch; pass a list or dataset of batches")
        return [tuple(data)]
    out = [batch for _, batch in zip(range(batches), data)]
    if not out:
        raise ValueError(f"score {score!r}: data holds no batch")
    return out


def _loss_fn(model, loss, score):
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None:
        raise ValueError(f"score {score!r} needs a loss: compile the model or pass loss=")
    return keras.losses.get(loss)


def kernel_gradients(model, layers, data, loss=None, batches=1, score="gradient"):
    """[{layer name: dL/d kernel}] for each batch of `data` (see the module docstring)."""
    loss_fn = _loss_fn(model, loss, score)
    strategy = model.distribute_strategy

    def gradients(x, y):
        kernels = [layer.kernel for layer in layers]
        with tf.GradientTape() as tape:
            value = loss_fn(y, model(x, training=False))
        return tape.gradient(value, kernels)

    out = []
    for x, y in _batches(data, batches, score):
        if strategy.num_replicas_in_sync > 1 and tf.distribute.in_cross_replica_context():
            # Mirrored variables are read in replica context: every replica takes the whole
            # batch and gets the same gradients; this process keeps its first replica's.
            grads = strategy.experimental_local_results(strategy.run(gradients, args=(x, y)))[0]
        else:
            grads = gradients(x, y)
        out.append({layer.name: np.zeros(tuple(layer.kernel.shape), np.float32) if g is None else np.asarray(g)
                    for layer, g in zip(layers, grads)})
    return out


@register_score("snip", per_model=True)
def snip(layers, *, model, data=None, loss=None, batches=1, **_):
    """Connection sensitivity |dL/dc| = |g w| of a mask c = 1 (Lee, Ajanthan & Torr 2019, "SNIP:
    single-shot network pruning based on connection sensitivity"), g the loss gradient averaged
    over the batches (the paper: one batch, at initialisation, pruned globally), divided by its sum
    over the layers scored, as in the paper (so a `threshold` is a share of the total)."""
    grads = kernel_gradients(model, layers, data, loss, batches, "snip")
    scores = {layer.name: np.abs(np.mean([g[layer.name] for g in grads], axis=0) * np.asarray(layer.kernel))
              for layer in layers}
    total = sum(float(s.sum()) for s in scores.values())
    return {name: s / total for name, s in scores.items()} if total > 0 else scores


@register_score("taylor", per_model=True)
def taylor(layers, *, model, data=None, loss=None, batches=1, **_):
    """First-order Taylor importance (g w)^2, averaged over batches (Molchanov, Mallya, Tyree,
    Frosio & Kautz 2019, "Importance estimation for neural network pruning", Eq. 8 per
    parameter): the loss change of removing one weight, squared so batches do not cancel."""
    grads = kernel_gradients(model, layers, data, loss, batches, "taylor")
    return {layer.name: np.mean([(g[layer.name] * np.asarray(layer.kernel)) ** 2 for g in grads], axis=0)
            for layer in layers}
