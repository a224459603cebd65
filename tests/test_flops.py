"""tflth.pruning.flops: the analytic count, and the engine's running count of training FLOPs."""
import keras
import numpy as np
import pytest

from tflth import engine, io, models, pruning
from tflth.layers import get_family
from tflth.lottery.hparams import DatasetHparams, LotteryHparams, TrainingHparams
from tflth.pruning import flops

LENET_WEIGHTS = 784 * 300 + 300 * 100 + 100 * 10


def test_dense_and_conv_layers_count_two_flops_per_weight_and_position():
    model = models.lenet_300_100()
    assert pruning.forward_flops(model) == {"sparse": 2 * LENET_WEIGHTS, "dense": 2 * LENET_WEIGHTS}
    pruning.set_masks(model, {"fc1": np.zeros((784, 300))})
    assert pruning.forward_flops(model) == {"sparse": 2 * (LENET_WEIGHTS - 784 * 300), "dense": 2 * LENET_WEIGHTS}
    conv = keras.Sequential([keras.Input((8, 8, 3)),
                             get_family("masked").conv2d(4, 3, padding="valid", name="c")])
    assert flops.positions(conv.get_layer("c")) == 36
    assert pruning.forward_flops(conv)["dense"] == 2 * 36 * 3 * 3 * 3 * 4


@pytest.mark.parametrize("family,matmuls", [("masked", 1), ("l0", 1), ("reparam", 1), ("flipout", 2),
                                            ("local_reparam", 2)])
def test_families_say_how_many_matmuls_a_training_pass_takes(family, matmuls):
    kw = {"dataset_size": 100} if family in ("reparam", "flipout", "local_reparam", "l0") else {}
    model = models.get_model("lenet_300_100", family=family, input_shape=(28, 28, 1), num_classes=10, **kw)
    assert pruning.forward_flops(model)["dense"] == matmuls * 2 * LENET_WEIGHTS


def test_a_layer_never_called_symbolically_is_counted_from_the_shape_it_was_built_for():
    def holder(built_for):
        layer = get_family("masked").dense(4)
        layer.build(built_for)

        class Holder(keras.Model):
            def __init__(self):
                super().__init__()
                self.inner = layer

            def call(self, x):
                return self.inner(x)
        return Holder()
    assert pruning.forward_flops(holder((None, 3))) == {"sparse": 2 * 12, "dense": 2 * 12}
    # Sequences of any length: no count
    assert pruning.forward_flops(holder((None, None, 3))) == {"sparse": None, "dense": None}


def test_training_counts_the_masks_each_step_trained_with(tmp_path):
    """Half of fc1 pruned at step 20 of 40 (an execution boundary): the count is exact."""
    hparams = LotteryHparams(DatasetHparams(batch_size=8, validation_size=16),
                             training=TrainingHparams(iterations=40, eval_every=20))
    model = models.lenet_300_100()
    engine.compile_model(model, hparams.training, steps_per_execution=10)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (64, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 64)
    data = {"x": x, "y": y, "validation": engine.eval_stream(x[:16], y[:16]), "test": engine.eval_stream(x[:32], y[:32])}
    prune = pruning.PruneCallback(pruning.OneShot(step=20, fraction=0.5), exclude=["fc2", "output"], verbose=0)
    rows = engine.train(model, data, hparams, str(tmp_path), callbacks=[prune], verbose=False)
    dense_step = 3 * 8 * 2 * LENET_WEIGHTS
    sparse_step = 3 * 8 * 2 * (LENET_WEIGHTS - 784 * 150)
    assert [(r["step"], r["flops_sparse"], r["flops_dense"]) for r in rows] == [
        (0, 0, 0), (20, 20 * dense_step, 20 * dense_step), (40, 20 * dense_step + 20 * sparse_step, 40 * dense_step)]
    hits = engine.correct(model, data["test"])
    assert hits.shape == (32,) and hits.mean() == pytest.approx(rows[-1]["test_acc"])
    assert np.array_equal(io.unpack_bits(io.pack_bits(hits)), hits)


def test_damaged_bits_are_refused():
    packed = io.pack_bits(np.ones(20, bool))
    with pytest.raises(ValueError, match="cannot hold exactly 30 flags"):
        io.unpack_bits({**packed, "n": 30})
