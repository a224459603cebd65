"""Gradient scores: SNIP and first-order Taylor, checked against the gradient written by hand."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tflth import pruning
from tflth.layers import MaskedDense


def _linear(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), MaskedDense(4, use_bias=False, name="fc")])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 4, n).astype("int32")


def _gradient(w, x, y):
    """d mean cross-entropy / dW of logits x W, by hand: x^T (softmax - onehot) / n."""
    logits = x @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return x.T @ p / len(y)


def test_snip_is_the_absolute_gradient_times_weight_normalised():
    model, (x, y) = _linear(), _data()
    w = model.get_layer("fc").kernel.numpy()
    score = pruning.score_layers("snip", pruning.prunable_layers(model), model, data=(x, y))["fc"]
    sensitivity = np.abs(_gradient(w, x, y) * w)
    np.testing.assert_allclose(score, sensitivity / sensitivity.sum(), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match=r"batches=2: data=\(x, y\) is one batch"):
        pruning.score_layers("snip", pruning.prunable_layers(model), model, data=(x, y), batches=2)


def test_taylor_averages_the_squared_first_order_term_over_batches():
    model, (x, y) = _linear(), _data()
    w = model.get_layer("fc").kernel.numpy()
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    score = pruning.score_layers("taylor", pruning.prunable_layers(model), model, data=batches, batches=2)["fc"]
    expected = np.mean([(_gradient(w, x[i:i + 8], y[i:i + 8]) * w) ** 2 for i in (0, 8)], axis=0)
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-10)


def test_snip_prunes_at_initialisation_to_the_target():
    model, data = _linear(), _data()
    w = model.get_layer("fc").kernel.numpy()
    pruning.prune_to(model, 0.75, score="snip", allocation="global", data=data)
    mask = pruning.get_masks(model)["fc"]
    assert mask.sum() == 6
    sensitivity = np.abs(_gradient(w, *data) * w)
    assert sensitivity[mask == 0].max() <= sensitivity[mask == 1].min()


def test_a_pruned_weights_gradient_is_still_the_dense_one():
    """What RigL grows by: the gradient at a zeroed position is not zero."""
    model, (x, y) = _linear(), _data()
    pruning.prune(model, 0.5)
    grads = pruning.saliency.kernel_gradients(model, pruning.prunable_layers(model), (x, y))[0]["fc"]
    np.testing.assert_allclose(grads, _gradient(model.get_layer("fc").kernel.numpy(), x, y), rtol=1e-4, atol=1e-7)
    assert np.all(grads[pruning.get_masks(model)["fc"] == 0] != 0)


@pytest.mark.parametrize("score", ["snip", "taylor"])
def test_gradient_scores_need_data_and_a_loss(score):
    model = _linear()
    with pytest.raises(ValueError, match=rf"score '{score}' needs data: pass data=\(x, y\)"):
        pruning.prune(model, 0.5, score=score)
    bare = keras.Sequential([keras.Input((6,)), MaskedDense(4)])
    with pytest.raises(ValueError, match=rf"score '{score}' needs a loss: compile the model or pass loss="):
        pruning.prune(bare, 0.5, score=score, data=_data())
    assert pruning.get_masks(bare)[bare.layers[0].name].all()  # nothing changed


def test_data_as_a_list_is_one_batch_and_more_arrays_are_refused():
    model, (x, y) = _linear(), _data()
    layers = pruning.prunable_layers(model)
    as_tuple = pruning.score_layers("snip", layers, model, data=(x, y))["fc"]
    np.testing.assert_array_equal(pruning.score_layers("snip", layers, model, data=[x, y])["fc"], as_tuple)
    with pytest.raises(ValueError, match=r"score 'snip': data holds 3 arrays; expected \(x, y\)"):
        pruning.score_layers("snip", layers, model, data=(x, y, np.ones(len(y))))
