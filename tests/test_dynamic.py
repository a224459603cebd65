"""Dynamic sparse training (SET, RigL): constant sparsity, changing connections, fresh slots."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tflth import models, pruning
from tflth.layers import DenseReparameterization
from tflth.pruning import dynamic, saliency


def test_drop_and_grow_keeps_the_count_drops_the_smallest_grows_the_best():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 5))
    mask = (rng.random((6, 5)) < 0.5).astype(np.float32)
    weights *= mask
    score = rng.random((6, 5))
    new, fresh = dynamic.drop_and_grow(weights, mask, 4, score)
    assert new.sum() == mask.sum()
    dropped = (mask == 1) & (new == 0)
    survivors = (mask == 1) & (new == 1)
    assert np.abs(weights[dropped]).max() <= np.abs(weights[survivors]).min()
    assert np.all(mask[fresh] == 0) and fresh.sum() <= 4
    grown = (new == 1) & ~survivors
    candidates = ~survivors
    assert score[grown].min() >= np.sort(score[candidates])[-4]


def test_drop_fraction_decays_as_a_cosine_to_zero_at_the_end():
    assert dynamic.drop_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert dynamic.drop_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert dynamic.drop_fraction(100, 0.3, 100) == 0.0
    assert dynamic.drop_fraction(50, 0.3, 100, "constant") == 0.3


def _sparse_model(optimizer="adam", seed=0):
    keras.utils.set_random_seed(seed)
    model = models.lenet_300_100(input_shape=(6, 6, 1))
    model.compile(keras.optimizers.get(optimizer), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)
    pruning.prune_to(model, 0.9, score="random", allocation="erk")
    return model


def _data(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype("float32"), rng.integers(0, 10, n).astype("int32")


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_training_keeps_each_layers_sparsity_while_connections_change(method):
    model = _sparse_model()
    x, y = _data()
    before = pruning.get_masks(model)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    callback = dynamic.SET(end=40, every=10) if method == "set" else dynamic.RigL(end=40, data=batches, every=10)
    model.fit(batches, steps_per_epoch=50, epochs=1, verbose=0, callbacks=[callback])
    after = pruning.get_masks(model)
    assert [s for s, _ in callback.updates] == [10, 20, 30]
    assert all(n > 0 for _, n in callback.updates)
    for name in before:
        assert after[name].sum() == before[name].sum()
        assert np.any(after[name] != before[name])
        assert np.all(model.get_layer(name).kernel.numpy()[after[name] == 0] == 0)


def test_rigl_grows_where_the_gradient_is_largest_with_zero_weights_and_slots():
    model = _sparse_model()
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # moments everywhere, the pruned positions too
    layers = pruning.prunable_layers(model)
    before = pruning.get_masks(model)
    grads = saliency.kernel_gradients(model, layers, (x[:16], y[:16]))[0]
    callback = dynamic.RigL(end=1000, data=[(x[:16], y[:16])], every=10)
    callback.set_model(model)
    callback.at_step(10)
    count = int(dynamic.drop_fraction(10, 0.3, 1000) * before["fc1"].sum())
    after = pruning.get_masks(model)
    fresh = (after["fc1"] == 1) & (before["fc1"] == 0)
    assert 0 < fresh.sum() <= count
    kept = (after["fc1"] == 1) & (before["fc1"] == 1)
    g = np.abs(grads["fc1"])
    assert g[fresh].min() >= g[(after["fc1"] == 0)].max()  # no candidate left had a larger gradient
    layer = model.get_layer("fc1")
    assert np.all(layer.kernel.numpy()[fresh] == 0)
    slots = dynamic._optimizer_slots(model.optimizer, layer.kernel, model.trainable_variables)
    assert len(slots) == 2  # Adam's momentum and velocity
    for slot in slots:
        assert np.all(slot.numpy()[fresh] == 0) and np.any(slot.numpy()[kept] != 0)


def test_slots_belong_to_the_longest_matching_variable():
    """A Bayesian layer's kernel_rho slots are named like the kernel's plus '_rho'."""
    model = keras.Sequential([keras.Input((3,)), DenseReparameterization(2, dataset_size=5)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    layer = model.layers[0]
    slots = dynamic._optimizer_slots(optimizer, layer.kernel, model.trainable_variables)
    assert sorted(s.name.rsplit("_", 1)[-1] for s in slots) == ["momentum", "velocity"]
    assert not any("rho" in s.name for s in slots)


@pytest.mark.parametrize("make,match", [
    (lambda: dynamic.SET(end=0), r"SET: end=0 must be an integer >= 1"),
    (lambda: dynamic.SET(end=10, alpha=1.0), r"SET: alpha=1.0 \(the drop fraction\) must be in \(0, 1\)"),
    (lambda: dynamic.SET(end=10, decay="linear"), r"SET: decay='linear' is unknown"),
    (lambda: dynamic.RigL(end=10, data=None), r"RigL: data=None; pass the training batches"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_grown_weights_start_at_zero_on_straight_through_layers():
    model = _sparse_model()
    pruning.straight_through(model)
    layer = model.get_layer("fc1")
    layer.kernel.assign(np.random.default_rng(0).normal(size=layer.kernel.shape).astype("float32"))  # dense values
    before = layer.mask.numpy()
    callback = dynamic.SET(end=1000, every=10)
    callback.set_model(model)
    callback.at_step(10)
    fresh = (layer.mask.numpy() == 1) & (before == 0)
    assert fresh.any() and np.all(layer.kernel.numpy()[fresh] == 0)


def test_nothing_to_rewire_and_unknown_exclusions_are_refused():
    x, y = _data()
    dense = models.lenet_300_100(input_shape=(6, 6, 1))
    dense.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"SET: no layer is sparse at step 5, so there is nothing to rewire"):
        dense.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[dynamic.SET(end=10, every=5)])
    with pytest.raises(ValueError, match=r"SET: exclude=\['fc9'\] are not prunable layers"):
        _sparse_model().fit(x, y, epochs=1, verbose=0, callbacks=[dynamic.SET(end=10, exclude=["fc9"])])


def test_l0_and_bayesian_layers_are_refused():
    x, y = _data()
    for family in ("l0", "flipout"):
        model = models.lenet_300_100(family=family, input_shape=(6, 6, 1), dataset_size=10)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        with pytest.raises(ValueError, match=r"RigL: layers \['fc1', 'fc2', 'output'\] do not support kernel_is_weights"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[dynamic.RigL(end=10, data=(x, y))])
