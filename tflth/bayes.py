"""Working with Bayesian models (`family="flipout"`, `"reparam"`, `"local_reparam"`):

    probs = tflth.bayes.predict(model, x, samples=30)    # Monte-Carlo predictive probabilities
    tflth.bayes.calibration(probs, y)                    # error, NLL, expected calibration error
    deploy = tflth.bayes.to_deterministic(model)         # masked model of posterior means
    small = tflth.pruning.compact.compact(deploy)        # ... without the removed neurons
    model.fit(..., callbacks=[tflth.bayes.KLWarmup(5000)])

Pruning by uncertainty while training uses `tflth.pruning.PruneCallback` with the scores
"snr", "log_alpha", "inclusion" and "horseshoe_scale".
"""
import contextlib

import keras
import numpy as np

from tflth.arguments import is_integer
from tflth.cloning import replace_layers
from tflth.layers.bayesian import BAYESIAN_LAYERS
from tflth.layers.masked import MaskedConv2D, MaskedDense
from tflth.pruning.callbacks import StepCallback
from tflth.pruning.masks import prunable_layers
from tflth.pruning.prunable import deployed_weights

__all__ = ["KLWarmup", "bayesian_layers", "calibration", "predict", "sampling", "to_deterministic"]

# What a Bayesian layer's config has beyond its masked layer's.
_BAYESIAN_KEYS = ("prior", "dataset_size", "scale_init", "seed", "local_reparameterization")


def bayesian_layers(model, required=True):
    """The model's Bayesian layers, in order (ValueError if there are none and `required`)."""
    layers = [layer for layer in prunable_layers(model) if isinstance(layer, BAYESIAN_LAYERS)]
    if required and not layers:
        raise ValueError("model has no Bayesian layers (build it with family='flipout', 'reparam' or "
                         "'local_reparam', or use tflth.layers.DenseFlipout, ...)")
    return layers


@contextlib.contextmanager
def sampling(model):
    """Inside, the model's Bayesian layers sample their weights in evaluation too (each `predict`
    call draws new ones); the mean mode is back on exit."""
    layers = bayesian_layers(model)
    model.predict_function = model.test_function = None  # traced with the layers' mode: trace again
    for layer in layers:
        layer.sampling = True
    try:
        yield model
    finally:
        for layer in layers:
            layer.sampling = False
        model.predict_function = model.test_function = None


def predict(model, x, samples=30, batch_size=1000, from_logits=True):
    """The Monte-Carlo predictive distribution: class probabilities averaged over `samples`
    weight draws (`samples=0`: the mean mode's probabilities)."""
    if not (is_integer(samples) and samples >= 0):
        raise ValueError(f"samples={samples!r}: must be an integer >= 0 (0: the posterior-mean mode)")

    def probabilities():
        out = model.predict(x, batch_size=batch_size, verbose=0)
        return np.asarray(keras.ops.softmax(out, axis=-1)) if from_logits else np.asarray(out)

    if samples == 0:
        return probabilities()
    with sampling(model):
        return np.mean([probabilities() for _ in range(samples)], axis=0)


def calibration(probs, labels, bins=15):
    """{"error", "nll", "ece"}: error rate, mean negative log-likelihood, and the expected
    calibration error (Guo et al. 2017: |accuracy - confidence| averaged over `bins` equal-width
    confidence bins, weighted by their share of examples)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs has shape {probs.shape}; expected (examples, classes) with {len(labels)} examples")
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == labels
    nll = -np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)))
    # tfp.stats.expected_calibration_error computes the same ECE (tests/test_bayes.py checks
    # it); tflth does not depend on TensorFlow Probability, whose Keras layers are Keras 2's.
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    ece = sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
              for b in range(bins) if np.any(which == b))
    return {"error": float(1.0 - correct.mean()), "nll": float(nll), "ece": float(ece)}


def to_deterministic(model):
    """A model of masked layers (`tflth.layers.MaskedDense` / `MaskedConv2D`) holding the posterior
    means of the kept weights (times the prior's mean multiplier: a horseshoe's scales, a
    spike-and-slab's inclusion probabilities), with the Bayesian model's masks. Its outputs are
    the Bayesian model's mean mode. `tflth.pruning.compact.compact` makes it smaller."""
    bayesian_layers(model)  # ValueError if there are none

    def masked(layer):
        if not isinstance(layer, BAYESIAN_LAYERS):
            return None
        config = {k: v for k, v in layer.get_config().items() if k not in _BAYESIAN_KEYS}
        kernel, bias = deployed_weights(layer)

        def load(new):
            new.mask.assign(layer.mask)
            new.kernel.assign(kernel)
            if layer.use_bias:
                new.bias.assign(bias)
        return (MaskedDense if isinstance(layer, keras.layers.Dense) else MaskedConv2D).from_config(config), load

    return replace_layers(model, masked, gone=lambda layer: isinstance(layer, BAYESIAN_LAYERS))


class KLWarmup(StepCallback):
    """Scales every Bayesian layer's KL term by 0 until step `start`, then linearly up to 1 over
    `iterations` steps: the likelihood alone at first, then the whole ELBO (Sønderby et al. 2016;
    the sparse VD authors' LeNet code: 0 for 5 epochs, then 1 after 15 more). A function of the
    step, so a resumed run continues the ramp."""

    def __init__(self, iterations, start=0):
        super().__init__()
        if not (is_integer(iterations) and iterations >= 1):
            raise ValueError(f"KLWarmup: iterations={iterations!r} must be an integer >= 1")
        if not (is_integer(start) and start >= 0):
            raise ValueError(f"KLWarmup: start={start!r} must be an integer >= 0")
        self.iterations, self.start = iterations, start

    def on_train_begin(self, logs=None):
        self._layers = bayesian_layers(self.model)
        super().on_train_begin(logs)

    def at_step(self, step):
        # Written at every step, also after the ramp: a rewind (`tflth.pruning.Rewind`) restores
        # kl_weight with the other weights, to its value at the snapshot's step.
        weight = min(1.0, max(0.0, (step - self.start) / self.iterations))
        for layer in self._layers:
            layer.kl_weight.assign(weight)
