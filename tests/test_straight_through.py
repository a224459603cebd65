"""Magnitude pruning with a straight-through estimator: dense weights keep their gradient."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tflth import models, pruning
from tflth.layers import L0Dense, MaskedDense


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,)), MaskedDense(4, name="fc")])
    pruning.prune(model, 0.5)
    return model


def test_forward_reads_kernel_times_mask_and_the_gradient_is_dense():
    model = _model()
    layer = model.get_layer("fc")
    layer.kernel.assign(np.arange(20, dtype=np.float32).reshape(5, 4) + 1)  # dense values under the mask
    pruning.straight_through(model)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    mask = layer.mask.numpy()
    np.testing.assert_allclose(model(x), x @ (layer.kernel.numpy() * mask) + layer.bias.numpy(), rtol=1e-5)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model(x))
    grad = tape.gradient(out, layer.kernel).numpy()
    np.testing.assert_allclose(grad, np.repeat(x.sum(0)[:, None], 4, axis=1), rtol=1e-5)  # d sum(x W)/dW, unmasked
    assert np.all(layer.kernel.numpy()[mask == 0] != 0)  # masks no longer zero the kernel
    kernel, _ = layer.deterministic_weights()
    assert np.all(np.asarray(kernel)[mask == 0] == 0)


def test_training_updates_pruned_weights_and_regrow_can_bring_them_back():
    model = _model()
    pruning.straight_through(model)
    model.compile(keras.optimizers.SGD(0.5), "mse")
    layer = model.get_layer("fc")
    mask = layer.mask.numpy()
    before = layer.kernel.numpy()
    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    model.fit(x, np.full((32, 4), 10.0, np.float32), epochs=3, verbose=0)
    after = layer.kernel.numpy()
    assert np.all(after[mask == 0] != before[mask == 0])  # pruned weights moved
    pruning.prune_to(model, 0.5, regrow=True)
    chosen = layer.mask.numpy()
    magnitude = np.abs(after).reshape(-1)
    assert chosen.sum() == 10 and magnitude[chosen.reshape(-1) == 0].max() <= magnitude[chosen.reshape(-1) == 1].min()
    pruning.straight_through(model, False)
    assert np.all(layer.kernel.numpy()[chosen == 0] == 0)


def test_the_option_round_trips_and_other_families_refuse_it():
    layer = MaskedDense(3, straight_through=True)
    assert MaskedDense.from_config(layer.get_config()).straight_through is True
    with pytest.raises(ValueError, match=r"straight_through='yes': must be True or False"):
        MaskedDense(3, straight_through="yes")
    with pytest.raises(ValueError, match=r"straight_through=True: L0 layers have no straight-through mode"):
        L0Dense(3, dataset_size=1, straight_through=True)
    model = models.lenet_300_100(family="l0", dataset_size=10)
    with pytest.raises(ValueError, match=r"straight_through: layers \['fc1', 'fc2', 'output'\] do not support straight_through"):
        pruning.straight_through(model)
    with pytest.raises(ValueError, match=r"regrow=True needs straight-through layers"):
        pruning.prune_to(_model(), 0.6, regrow=True)


def test_prune_callback_with_an_allocation_prunes_to_the_schedules_sparsity():
    keras.utils.set_random_seed(0)
    model = models.lenet_300_100(input_shape=(6, 6, 1))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6, 6, 1)).astype("float32"), rng.integers(0, 10, 40)
    schedule = pruning.PolynomialDecay(0.9, begin_step=0, end_step=8, frequency=4)
    callback = pruning.PruneCallback(schedule, allocation="erk", verbose=0)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.pruned_at == [0, 4, 8]
    shapes = {layer.name: tuple(layer.kernel.shape) for layer in pruning.prunable_layers(model)}
    expected = pruning.allocate(shapes, 0.9, "erk")
    kept = {n: int(m.sum()) for n, m in pruning.get_masks(model).items()}
    for n in shapes:  # within one weight: each step's target comes from the counts the last one left
        assert abs(kept[n] - (1 - expected[n]) * np.prod(shapes[n])) <= 1
    with pytest.raises(ValueError, match=r"allocation=, overrides= and regrow= prune to a sparsity"):
        pruning.PruneCallback(schedule, allocation="erk", threshold=0.1)
