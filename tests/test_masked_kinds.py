"""The masked kinds beyond Dense and Conv2D (tflth/layers/masked_kinds.py), each in a small model
of Keras layers made sparse with `tflth.sparsify`: same outputs, exact zeros after pruning and a
training step, every score, SET and RigL, saving both ways, strip and export."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tflth
from tflth import pruning
from tflth.export import save_sparse, strip
from tflth.pruning import flops

RNG = np.random.default_rng(0)

# kind: (the layer, its input (shape of one example, dtype), the masked class made of it)
KINDS = {
    "conv1d": (lambda: keras.layers.Conv1D(4, 3, name="kind"), (10, 3), "MaskedConv1D"),
    "conv3d": (lambda: keras.layers.Conv3D(3, 2, name="kind"), (4, 4, 4, 2), "MaskedConv3D"),
    "depthwise": (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="kind"), (6, 6, 3),
                  "MaskedDepthwiseConv2D"),
    "separable": (lambda: keras.layers.SeparableConv2D(5, 3, name="kind"), (6, 6, 3), "MaskedSeparableConv2D"),
    "transpose": (lambda: keras.layers.Conv2DTranspose(4, 3, strides=2, name="kind"), (4, 4, 3),
                  "MaskedConv2DTranspose"),
    "einsum": (lambda: keras.layers.EinsumDense("abc,cde->abde", output_shape=(5, 2, 3), bias_axes="de",
                                                name="kind"), (5, 4), "MaskedEinsumDense"),
    "embedding": (lambda: keras.layers.Embedding(30, 4, name="kind"), (7,), "MaskedEmbedding"),
}


def _data(kind, n=16):
    shape = KINDS[kind][1]
    if kind == "embedding":
        return RNG.integers(0, 30, size=(n,) + shape).astype("int32")
    return RNG.normal(size=(n,) + shape).astype("float32")


def _model(kind):
    inputs = keras.Input(KINDS[kind][1], dtype="int32" if kind == "embedding" else "float32")
    x = keras.layers.Flatten()(KINDS[kind][0]()(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_kind_converts_prunes_trains_with_exact_zeros_and_saves(kind, tmp_path):
    model, x = _model(kind), _data(kind)
    converted = tflth.sparsify(model, exclude=["logits"])
    layer = converted.get_layer("kind")
    assert type(layer).__qualname__ == KINDS[kind][2]
    np.testing.assert_allclose(converted(x), model(x), atol=1e-6)

    pruning.prune_to(converted, 0.6, score="random", seed=1)
    converted.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    converted.fit(x, np.arange(16) % 3, epochs=2, batch_size=8, verbose=0)
    masks = pruning.get_masks(converted)
    for prunable in pruning.prunable_layers(converted):
        kernel = np.asarray(prunable.kernel)
        assert np.all(kernel[masks[prunable.name] == 0] == 0) and np.any(kernel[masks[prunable.name] == 1] != 0)
    assert pruning.sparsity(converted)["total"] == pytest.approx(0.6, abs=0.03)

    path = str(tmp_path / "converted.keras")
    converted.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_array_equal(loaded(x), converted(x))
    assert pruning.get_masks(loaded).keys() == masks.keys()

    # Weight files both ways: the pruned model's into the plain one, the plain one's into a fresh copy.
    converted.save_weights(str(tmp_path / "pruned.weights.h5"))
    model.load_weights(str(tmp_path / "pruned.weights.h5"))
    np.testing.assert_allclose(model(x), converted(x), atol=1e-6)
    model.save_weights(str(tmp_path / "plain.weights.h5"))
    fresh = tflth.sparsify(_model(kind))
    fresh.load_weights(str(tmp_path / "plain.weights.h5"))
    np.testing.assert_allclose(fresh(x), converted(x), atol=1e-6)
    assert all(np.all(m == 1) for m in pruning.get_masks(fresh).values())  # a file without masks: all ones

    plain = strip(converted)
    assert not pruning.prunable_layers(plain) and type(plain.get_layer("kind")).__module__.startswith("keras.")
    np.testing.assert_allclose(plain(x), converted(x), atol=1e-6)


@pytest.mark.parametrize("kind", ["conv1d", "separable", "einsum"])
def test_sparse_export_keeps_a_kind_without_a_sparse_kernel_dense_and_says_so(kind, tmp_path):
    converted = tflth.sparsify(_model(kind))
    pruning.prune_to(converted, 0.5)
    x = _data(kind)
    report = save_sparse(converted, str(tmp_path / "export"), format="sparse", sample=x)
    named = {"separable": ["kind", "kind_depthwise"]}.get(kind, ["kind"])
    assert report["stored_dense"] == named
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(loaded.serve(x), converted(x), atol=1e-5)


def _all_kinds():
    """One model holding every float kind: two branches from one image, and a 1-D one."""
    image, seq = keras.Input((8, 8, 3)), keras.Input((10, 3))
    a = keras.layers.SeparableConv2D(16, 3, name="separable")(image)
    a = keras.layers.DepthwiseConv2D(3, name="depthwise")(a)
    a = keras.layers.Conv2DTranspose(3, 2, strides=2, name="transpose")(a)
    b = keras.layers.Conv1D(4, 3, name="conv1d")(seq)
    b = keras.layers.EinsumDense("abc,cd->abd", output_shape=(8, 6), bias_axes="d", name="einsum")(b)
    x = keras.layers.Concatenate()([keras.layers.Flatten()(a), keras.layers.Flatten()(b)])
    return keras.Model([image, seq], keras.layers.Dense(3, name="logits")(x))


@pytest.mark.parametrize("score, allocation", [("magnitude", "erk"), ("random", "global"), ("snip", "uniform"),
                                               ("taylor", "uniform")])
def test_every_score_and_allocation_prunes_every_kind(score, allocation):
    model = tflth.sparsify(_all_kinds())
    x = [RNG.normal(size=(8, 8, 8, 3)).astype("float32"), RNG.normal(size=(8, 10, 3)).astype("float32")]
    y = np.arange(8) % 3
    context = {"data": (x, y), "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)} \
        if score in ("snip", "taylor") else {}
    pruning.prune_to(model, 0.7, score=score, allocation=allocation, **context)
    sparsities = pruning.sparsity(model)
    assert sparsities["total"] == pytest.approx(0.7, abs=0.01)
    names = {"separable", "separable_depthwise", "depthwise", "transpose", "conv1d", "einsum", "logits"}
    assert set(sparsities) - {"total"} == names
    if allocation == "uniform":
        assert all(sparsities[name] == pytest.approx(0.7, abs=0.1) for name in names)
    roles = pruning.layer_roles(model)
    assert roles["einsum"] == "dense" and roles["transpose"] == roles["separable_depthwise"] == "conv"
    # Each weight is used once per output position (transposed: input position; depthwise: per channel).
    expected = {"separable": 36, "separable_depthwise": 36, "depthwise": 16, "transpose": 16, "conv1d": 8,
                "einsum": 8, "logits": 1}
    assert {layer.name: flops.positions(layer) for layer in pruning.prunable_layers(model)} == expected


@pytest.mark.parametrize("callback", ["SET", "RigL"])
def test_dynamic_sparse_training_moves_connections_in_every_kind(callback):
    model = tflth.sparsify(_all_kinds())
    pruning.prune_to(model, 0.5, score="random", allocation="uniform", seed=0)
    before = pruning.get_masks(model)
    x = [RNG.normal(size=(32, 8, 8, 3)).astype("float32"), RNG.normal(size=(32, 10, 3)).astype("float32")]
    y = np.arange(32) % 3
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss)
    extra = {"data": tf.data.Dataset.from_tensor_slices((tuple(x), y)).batch(8).repeat(), "loss": loss} \
        if callback == "RigL" else {}
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[getattr(pruning, callback)(end=8, every=2, alpha=0.3, **extra)])
    after = pruning.get_masks(model)
    for name, mask in after.items():
        assert mask.sum() == before[name].sum(), name  # the counts stay
    moved = [name for name in after if np.any(after[name] != before[name])]
    assert {"separable", "separable_depthwise", "depthwise", "transpose", "conv1d", "einsum"} <= set(moved)
    for layer in pruning.prunable_layers(model):
        assert np.all(np.asarray(layer.kernel)[after[layer.name] == 0] == 0), layer.name


def test_options_a_kind_lacks_are_refused_in_one_line():
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.DepthwiseConv2D(3, name="dw")])
    with pytest.raises(ValueError, match=r"cannot be made a masked layer: straight_through=True: masked layers "
                                         r"have no straight-through mode"):
        tflth.sparsify(model, straight_through=True)
    converted = tflth.sparsify(keras.Sequential([keras.Input((8,)), keras.layers.Embedding(5, 2)]))
    with pytest.raises(ValueError, match=r"do not support straight_through"):
        pruning.straight_through(converted)
    conv1d = tflth.layers.MaskedConv1D(2, 3, targeted_dropout=0.5)  # the Conv1D kind has every option
    assert conv1d.targeted_dropout == 0.5


def test_unit_and_n_m_pruning_refuse_kinds_without_an_inputs_outputs_layout():
    model = tflth.sparsify(_all_kinds())
    for call, who in ((lambda: pruning.prune_units(model, 0.3), "prune_units"),
                      (lambda: pruning.prune_nm(model, 2, 4), "N:M sparsity")):
        with pytest.raises(ValueError, match=rf"^{who}: layers \['separable', 'separable_depthwise', 'depthwise', "
                                             r"'transpose', 'einsum'\] are not Dense or Conv1D/2D/3D"):
            call()
