"""Pruning scores: the plug-in point of every pruning method.

A score is a function `score(layer, **context) -> array` of the kernel's shape:
a higher score means the weight is more worth keeping. Context carries what some
scores need (`seed` for random, `data` for SNIP); each score takes the keys it uses
and ignores the rest. A score that needs the whole model (a backward pass: SNIP, Taylor,
in saliency.py) is registered with `per_model=True` and is called once as
`score(layers, model=model, **context) -> {layer name: array}`. Magnitude and random fit every masked layer;
the uncertainty scores (snr, log_alpha, inclusion, horseshoe_scale) read the Bayesian
and L0 families' variational parameters.
"""
import zlib

import numpy as np

from tflth.pruning.prunable import deployed_weights

_SCORES = {}


def register_score(name, per_model=False):
    """Decorator that makes a score available to `prune(score=name)`."""
    def add(fn):
        fn.per_model = per_model
        _SCORES[name] = fn
        return fn
    return add


def get_score(score):
    """Returns a score function given one or its registered name."""
    if callable(score):
        return score
    if score not in _SCORES:
        raise ValueError(f"score={score!r} is unknown; allowed: {sorted(_SCORES)} or a callable")
    return _SCORES[score]


def available_scores():
    """The names of the registered scores (`register_score`), sorted."""
    return sorted(_SCORES)


def score_layers(score, layers, model, **context):
    """{layer name: score array} of every layer in `layers`, each of its kernel's shape."""
    fn = get_score(score)
    if getattr(fn, "per_model", False):
        out = fn(layers, model=model, **context)
    else:
        out = {layer.name: fn(layer, **context) for layer in layers}
    for layer in layers:
        if np.shape(out[layer.name]) != tuple(layer.kernel.shape):
            raise ValueError(f"score {score!r} returned shape {np.shape(out[layer.name])} for layer "
                             f"{layer.name!r}; expected {tuple(layer.kernel.shape)}")
    return out


@register_score("magnitude")
def magnitude(layer, **_):
    """|w|, the lottery-ticket paper's score, of the weights the layer computes with in evaluation
    (`deployed_weights`: the kernel, or for L0 and Bayesian layers kernel times gate or
    posterior multiplier, so a horseshoe's neuron scales count)."""
    return np.abs(deployed_weights(layer)[0])


@register_score("random")
def random(layer, *, seed=0, **_):
    """Uniform noise; the random-pruning control. Same seed and layer name, same score."""
    layer_seed = zlib.crc32(layer.name.encode()) ^ (seed & 0xFFFFFFFF)
    return np.random.default_rng(layer_seed).random(tuple(layer.kernel.shape))


# Uncertainty scores: computed from a family's variational parameters, so pruning can happen
# while training. Each names the layers it needs when a model lacks them.

def _need(layer, attribute, score, what):
    if not hasattr(layer, attribute):
        raise ValueError(f"score {score!r} needs {what}; layer {layer.name!r} ({type(layer).__qualname__}) has none")


@register_score("snr")
def snr(layer, **_):
    """Signal-to-noise ratio |mean| / scale of each weight's posterior (Graves 2011; Blundell et
    al. 2015): Bayesian layers (`tflth.layers.DenseFlipout`, ...)."""
    _need(layer, "kernel_scale", "snr", "Bayesian layers (family='flipout', 'reparam' or 'local_reparam')")
    return np.abs(np.asarray(layer.kernel)) / np.asarray(layer.kernel_scale)


@register_score("log_alpha")
def log_alpha(layer, **_):
    """-log alpha = log(mean^2 / scale^2), so that a higher score keeps (sparse variational
    dropout, Molchanov et al. 2017: drop log alpha > 3, i.e. `threshold=-3`). It ranks weights
    exactly as "snr" does (-log alpha = 2 log snr); the threshold is what differs."""
    _need(layer, "kernel_scale", "log_alpha", "Bayesian layers (family='flipout', 'reparam' or 'local_reparam')")
    return 2.0 * np.log(np.maximum(snr(layer), 1e-30))


@register_score("inclusion")
def inclusion(layer, **_):
    """The posterior probability that a weight is in the network: P(z = 1) of a spike-and-slab
    prior, or P(z != 0) of an L0 gate (expanded to the weights it switches)."""
    p = layer.inclusion_probability()
    if p is None:
        raise ValueError(f"score 'inclusion' needs L0 layers or Bayesian layers with a SpikeAndSlab prior; "
                         f"layer {layer.name!r} ({type(layer).__qualname__}) has neither")
    return np.array(p)


@register_score("horseshoe_scale")
def horseshoe_scale(layer, **_):
    """E[s z] / sd[s z]: the signal-to-noise ratio of a horseshoe's scale over each weight's group
    (an input neuron of a dense layer, a filter of a conv), the same for the whole group, so whole
    neurons go together (node pruning; `threshold=1` drops groups whose scale is back at the
    prior). See `tflth.priors.Horseshoe.scale_snr` for why not E[s z] itself."""
    variables = layer.prior_variables
    if "group_loc" not in variables:
        raise ValueError(f"score 'horseshoe_scale' needs Bayesian layers with a Horseshoe prior; layer "
                         f"{layer.name!r} ({type(layer).__qualname__}) has none")
    snr = layer.prior.scale_snr(variables)
    return np.broadcast_to(np.asarray(snr), tuple(layer.kernel.shape)).copy()
