"""Pruning scores: the plug-in point of every pruning method.

A score is a function `score(layer, **context) -> array` of the kernel's shape:
a higher score means the weight is more worth keeping. Context carries what some
scores need (`seed` for random, later a data batch for SNIP); each score takes
the keys it uses and ignores the rest.
"""
import zlib

import numpy as np

_SCORES = {}


def register_score(name):
    """Decorator that makes a score available to `prune(score=name)`."""
    def add(fn):
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
    return sorted(_SCORES)


@register_score("magnitude")
def magnitude(layer, **_):
    """|w|: the lottery-ticket paper's score."""
    return np.abs(np.asarray(layer.kernel))


@register_score("random")
def random(layer, *, seed=0, **_):
    """Uniform noise; the random-pruning control. Same seed and layer name, same score."""
    layer_seed = zlib.crc32(layer.name.encode()) ^ (seed & 0xFFFFFFFF)
    return np.random.default_rng(layer_seed).random(tuple(layer.kernel.shape))
