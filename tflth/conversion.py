"""Any Keras model made sparse: `sparsify(model, family)` copies a Sequential or Functional
model (nested ones too) with its layers of the kinds a layer family covers replaced by the
family's, so that pruning, the callbacks, rewinding, the scores and export take it as they take
`tflth.models`. Layers held by other layers (MultiHeadAttention's EinsumDense projections, a
block of your own) are replaced inside the copy, where they are; a subclassed model, which Keras
cannot copy, is converted itself with `in_place=True`.

The copy keeps every weight: a replaced layer's own variables (kernel, bias) are copied into the
new layer (Bayesian families: as the posterior means; their scales start where the family starts
them), the other layers are copied whole. Before any pruning it computes what the model computes:
exactly for the masked family, for L0 gates in evaluation once the gates are open
(`droprate_init` <= 1/12 opens the test-time gates fully), and for Bayesian layers in their
mean mode (`tflth.bayes.to_deterministic`).

Layers of kinds the family does not cover (L0 and Bayesian: all but Dense and Conv2D; every
family: BatchNormalization, LayerNormalization, ...) are copied as they are and stay dense, and
so do the layers named in `exclude` and subclasses of Keras' layers (which compute something of
their own that a family's layer would not keep). A layer replaced where it is comes back from a
`.keras` file as its parent builds it (plain, its zeros kept): convert the loaded model again.
"""
import collections
import contextlib

import keras

from tflth import internals
from tflth.cloning import replace_layers
from tflth.layers.family import get_family
from tflth.pruning.masks import prunable_layers


def _constructor(family, layer):
    """The family's constructor for `layer`, by its class exactly (a subclass of Dense does
    something of its own, which a family's layer would not keep), else None."""
    return family.constructor(type(layer))


# Keras' initializer attributes: the draws they make on build are overwritten by the copied weights.
_INITIALIZERS = ("kernel_initializer", "bias_initializer", "depthwise_initializer", "pointwise_initializer",
                 "embeddings_initializer")


def _build_like(layer, new):
    """Builds `new` for the input `layer` was built for, drawing zeros where it would draw Keras'
    initial weights (most of a conversion's time: ResNet50's 25M weights), then puts its
    initializers back (its config keeps them)."""
    saved = {name: getattr(new, name) for name in _INITIALIZERS if hasattr(new, name)}
    for name in saved:
        setattr(new, name, keras.initializers.Zeros())
    try:
        new.build_from_config(layer.get_build_config())
    finally:
        for name, value in saved.items():
            setattr(new, name, value)


def _copy_weights(layer, made):
    """Sets the Keras layer's own variables (kernel, bias, ...) into `made`, whose variables begin
    with the same ones (then its own: masks, gates, scales)."""
    for source, target in zip(layer.weights, made.weights):
        target.assign(source)


# The layer arguments `family_kwargs` may set over the layer's own: how its weights are drawn,
# penalised and constrained, never what they are (units, kernel size, ...).
_SETTABLE = ("_initializer", "_regularizer", "_constraint")


def _made(family, layer, family_kwargs, name=None):
    """`layer` of `family`, with the layer's own arguments and `family_kwargs` (and `name`), built
    for the same input."""
    config = layer.get_config()
    try:
        fixed = sorted(key for key in family_kwargs if key in config and not key.endswith(_SETTABLE))
        if fixed:
            raise ValueError(f"{fixed} are arguments of the layer itself; sparsify sets only the family's, "
                             "initializers, regularizers and constraints")
        if config.get("lora_rank"):
            raise ValueError("a LoRA layer's kernel is computed from other weights; merge LoRA into it first")
        if getattr(layer.dtype_policy, "quantization_mode", None):
            raise ValueError("its kernel is quantized")
        new = _constructor(family, layer)(**{**config, **family_kwargs, **({"name": name} if name else {})})
        _build_like(layer, new)
        return new
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be made a {family.name} "
                         f"layer: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _replace_held(root, wanted, make):
    """Replaces, where they are, the wanted layers that another layer holds (MultiHeadAttention's
    projections, a block of your own, a subclassed model's layers): the layers of a Functional or
    Sequential model sit in its graph, which the copy has already rebuilt. A layer whose name
    another layer has too is named `<holder>_<name>` (each MultiHeadAttention has a "query")."""
    layers = internals.all_layers(root)
    pairs = [(parent, child) for parent in [root] + layers
             if not internals.is_graph_model(parent) for child in internals.sublayers(parent) if wanted(child)]
    reached = {id(child) for _, child in pairs}
    left = [layer.name for layer in layers if wanted(layer) and id(layer) not in reached]
    if left:
        raise ValueError(f"layers {left} sit in a Functional or Sequential model that a layer of your own holds, "
                         "which Keras cannot rebuild where it is; hold the layers themselves, or exclude them")
    unbuilt = [child.name for _, child in pairs if not child.built]
    if unbuilt:
        raise ValueError(f"layers {unbuilt} are not built; call the model on data first")
    counts = collections.Counter(layer.name for layer in layers)
    made = {}  # id(layer) -> its replacement: a layer two holders share stays one layer
    for parent, child in pairs:
        if id(child) not in made:
            # Built in its holder's name scope, so its variables' paths stay unique (optimizer slots
            # are found by path).
            with contextlib.ExitStack() as scope:
                for part in child.weights[0].path.split("/")[:-2]:
                    scope.enter_context(keras.name_scope(part))
                made[id(child)] = make(child, None if counts[child.name] == 1 else f"{parent.name}_{child.name}")
            _copy_weights(child, made[id(child)])
        internals.replace_sublayer(parent, child, made[id(child)])


def sparsify(model, family="masked", exclude=(), in_place=False, per_layer=None, **family_kwargs):
    """A copy of `model` whose layers of the kinds `family` covers (masked: Dense, Conv1D/2D/3D,
    DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, EinsumDense, Embedding; L0 and Bayesian:
    Dense, Conv2D), but those named in `exclude`, are `family`'s (a registered name: masked, l0,
    flipout, reparam, local_reparam, or a `LayerFamily`), built with the layer's own arguments and
    `family_kwargs` (e.g. `droprate_init=`, `dataset_size=`, `kernel_regularizer=`), and for the
    layers `per_layer` names ({layer name: {argument: value}}) those too; see the module docstring.
    `in_place=True` converts `model` itself instead, for a subclassed model (which Keras cannot
    copy). ValueError (one line) for a model that is not a Keras model, an unknown family, an
    `exclude` that names no layer, a layer the family cannot take or one not yet built."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model: expected a keras.Model (Sequential, Functional or subclassed), got "
                         f"{type(model).__name__}")
    chosen = get_family(family)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    names = {layer.name for layer in internals.all_layers(model)}
    per_layer = dict(per_layer or {})
    for argument, given in (("exclude", exclude), ("per_layer", per_layer)):
        unknown = [name for name in given if name not in names]
        if unknown:
            raise ValueError(f"{argument}={unknown}: no such layer in model {model.name!r}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; call it on data or build it first")
    graph = internals.is_graph_model(model)
    if graph == in_place:
        raise ValueError(f"in_place={in_place}: model {model.name!r} is " +
                         ("a Functional or Sequential model, copied layer by layer; leave in_place=False"
                          if graph else "subclassed, which Keras cannot copy; pass in_place=True to convert it "
                                        "where it is"))

    def wanted(layer):
        return _constructor(chosen, layer) is not None and layer.name not in exclude

    def make(layer, name=None):
        return _made(chosen, layer, {**family_kwargs, **per_layer.get(layer.name, {})}, name)

    def replace(layer):
        if not wanted(layer):
            return None
        return make(layer), lambda made: _copy_weights(layer, made)

    if graph:
        model = replace_layers(model, replace)
    _replace_held(model, wanted, make)
    repeated = sorted(name for name, count in collections.Counter(
        layer.name for layer in prunable_layers(model)).items() if count > 1)
    if repeated:  # masks are filed by layer name
        raise ValueError(f"model {model.name!r} has several prunable layers named {repeated}; rename them")
    return model
