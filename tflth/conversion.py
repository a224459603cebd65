"""Any Keras model made sparse: `sparsify(model, family)` copies a Sequential or Functional
model (nested ones too) with its Dense and Conv2D layers replaced by a layer family's, so that
pruning, the callbacks, rewinding, the scores and export take it as they take `tflth.models`.

The copy keeps every weight: a replaced layer's kernel and bias are copied into the new layer
(Bayesian families: as the posterior means; their scales start where the family starts them),
the other layers are copied whole. Before any pruning it computes what the model computes:
exactly for the masked family, for L0 gates in evaluation once the gates are open
(`droprate_init` <= 1/12 opens the test-time gates fully), and for Bayesian layers in their
mean mode (`tflth.bayes.to_deterministic`).

Layers of other kinds (Conv1D, DepthwiseConv2D, EinsumDense, ...) are copied as they are and
stay dense, and so do the layers named in `exclude`.
"""
import keras

from tflth import internals
from tflth.cloning import replace_layers
from tflth.layers.family import get_family

# The Keras layers a family replaces, and the constructor of the family that makes each.
REPLACED = {keras.layers.Dense: "dense", keras.layers.Conv2D: "conv2d"}


def _replaced(layer):
    """The family's constructor name for `layer`: its class exactly (a subclass of Dense does
    something of its own, which a family's layer would not keep), else None."""
    return REPLACED.get(type(layer))


def sparsify(model, family="masked", exclude=(), **family_kwargs):
    """A copy of `model` whose Dense and Conv2D layers, but those named in `exclude`, are
    `family`'s (a registered name: masked, l0, flipout, reparam, local_reparam, or a
    `LayerFamily`), built with the layer's own arguments and `family_kwargs` (e.g.
    `droprate_init=`, `dataset_size=`); see the module docstring. ValueError (one line) for a
    model that is not a Keras model, an unknown family, an `exclude` that names no layer, or a
    layer to replace that sits inside a layer of your own (which Keras copies whole)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model: expected a keras.Model (Sequential or Functional), got {type(model).__name__}")
    chosen = get_family(family)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    names = {layer.name for layer in internals.all_layers(model)}
    unknown = [name for name in exclude if name not in names]
    if unknown:
        raise ValueError(f"exclude={unknown}: no such layer in model {model.name!r}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; call it on data or build it first")

    def wanted(layer):
        return _replaced(layer) is not None and layer.name not in exclude

    def replace(layer):
        if not wanted(layer):
            return None
        try:
            new = getattr(chosen, _replaced(layer))(**layer.get_config(), **family_kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be made a {chosen.name} "
                             f"layer: {str(e).splitlines()[0]}") from None

        def load(made):
            made.kernel.assign(layer.kernel)
            if layer.use_bias:
                made.bias.assign(layer.bias)
        return new, load

    return replace_layers(model, replace, gone=wanted)
