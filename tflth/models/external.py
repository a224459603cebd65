"""Models that are not tflth's own, by name, for the runners' `--model` flag:

- `keras.applications.NAME` (e.g. `keras.applications.MobileNetV2`): built with `weights=None`,
  `classes` the dataset's and no final softmax (tflth trains on logits);
- `package.module:function`: your function, called with `input_shape=` and `num_classes=` (and,
  if it takes `family`, with the family and its arguments, to build its layers from them); it
  returns a `keras.Model` whose last layer gives logits.

A model that comes back without prunable layers is made sparse by `tflth.sparsify` in the
family asked for (`plain`: left as it is), so every runner, resume and export takes it.
"""
import importlib
import inspect

import keras

from tflth import internals
from tflth.conversion import sparsify
from tflth.pruning.masks import prunable_layers

APPLICATIONS = "keras.applications."


def _applications():
    return sorted(name for name in dir(keras.applications) if name[:1].isupper())


def _function(name):
    """The model function `name` stands for (ValueError, one line, naming `--model`, if none)."""
    if name.startswith(APPLICATIONS):
        function = getattr(keras.applications, name[len(APPLICATIONS):], None)
        if function is None or not name[len(APPLICATIONS):][:1].isupper():
            raise ValueError(f"--model={name!r}: keras.applications has no such model; allowed: "
                             f"{', '.join(_applications())}")
        return function
    module, _, attribute = name.partition(":")
    if not module or not attribute:
        raise ValueError(f"--model={name!r}: expected a tflth model name, keras.applications.NAME or "
                         "package.module:function")
    try:
        imported = importlib.import_module(module)
    except Exception as e:  # whatever the module raises while it loads, said in one line
        raise ValueError(f"--model={name!r}: module {module!r} does not import ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    function = getattr(imported, attribute, None)
    if not callable(function):
        raise ValueError(f"--model={name!r}: module {module!r} has no function {attribute!r}")
    return function


def is_external(name):
    return name.startswith(APPLICATIONS) or ":" in name


def check(name):
    """ValueError (one line) unless `name` is a keras.applications model or an importable function."""
    _function(name)


def build(name, family="masked", input_shape=None, num_classes=None, **layer_kw):
    """The model `name` stands for (see the module docstring), of `family`."""
    function = _function(name)
    try:
        if name.startswith(APPLICATIONS):
            model = function(input_shape=tuple(input_shape), weights=None, classes=num_classes,
                             classifier_activation=None)
        elif "family" in inspect.signature(function).parameters:
            model = function(input_shape=tuple(input_shape), num_classes=num_classes, family=family, **layer_kw)
        else:
            model = function(input_shape=tuple(input_shape), num_classes=num_classes)
    except Exception as e:  # whatever your function raises, said in one line
        raise ValueError(f"--model={name!r} cannot be built for input shape {tuple(input_shape)} and "
                         f"{num_classes} classes: {str(e).splitlines()[0]}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"--model={name!r} returned {type(model).__name__}, not a keras.Model")
    if prunable_layers(model) or family == "plain":
        return model
    return sparsify(model, family, in_place=not internals.is_graph_model(model), **layer_kw)
