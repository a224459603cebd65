"""Layer families: one architecture, built from any family of layers.

A model function asks its family for `dense(...)` and `conv2d(...)` with the
arguments of `keras.layers.Dense` / `keras.layers.Conv2D`. Masked layers are the
first family; L0 and Bayesian families plug in later by registering here.
"""
import dataclasses
from typing import Callable

import keras


@dataclasses.dataclass(frozen=True)
class LayerFamily:
    """A family of layers every architecture of `tflth.models` can be built from: its `name`
    (the `family=` argument), its `dense` and `conv2d` constructors (taking Keras' Dense and
    Conv2D arguments), whether its layers take `dataset_size=`, and constructors of `more`
    Keras layer kinds."""
    name: str
    dense: Callable[..., keras.layers.Layer]
    conv2d: Callable[..., keras.layers.Layer]
    # Layers whose penalty is scaled by the number of training examples (L0 gates, Bayesian
    # KL terms) take `dataset_size=`; runners pass it for families that say so.
    takes_dataset_size: bool = False
    # {Keras layer class: constructor taking its arguments} for kinds beyond Dense and Conv2D,
    # which `tflth.sparsify` replaces too (the masked family's: tflth/layers/masked_kinds.py).
    more: dict = dataclasses.field(default_factory=dict, hash=False)

    def constructor(self, keras_cls):
        """The family's constructor for layers of exactly `keras_cls`, None for a kind it lacks."""
        return {keras.layers.Dense: self.dense, keras.layers.Conv2D: self.conv2d, **self.more}.get(keras_cls)


_FAMILIES = {}


def register_family(family):
    """Makes `family` available by name to every model function."""
    _FAMILIES[family.name] = family
    return family


def get_family(family):
    """Returns a LayerFamily given one or its registered name."""
    if isinstance(family, LayerFamily):
        return family
    if family not in _FAMILIES:
        raise ValueError(
            f"family={family!r} is unknown; allowed: {sorted(_FAMILIES)} or a LayerFamily")
    return _FAMILIES[family]


register_family(LayerFamily("plain", keras.layers.Dense, keras.layers.Conv2D))
