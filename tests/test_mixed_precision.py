"""Every layer family under mixed_float16 and mixed_bfloat16: masks, L0 gates and variational
parameters stay float32, Bayesian layers compute in float32, pruned weights stay exactly zero,
and training matches float32 training closely."""
import functools

import keras
import numpy as np
import pytest

from tflth import io, models, priors, pruning
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.lottery import paths as lottery_paths
from tflth.lottery import runner as lottery_runner
from tflth.lottery.hparams import LotteryHparams
from tflth.runs import load_data
from tflth.trainer import runner as trainer_runner
from tflth.trainer.hparams import ModelHparams, SparsityHparams, TrainerHparams

FAMILIES = {
    "masked": ({}, "magnitude"),
    "l0": ({"gates": "weight", "dataset_size": 96}, "inclusion"),
    "flipout": ({"prior": priors.Normal(), "dataset_size": 96}, "snr"),
    "local_reparam": ({"prior": priors.LogUniform(), "dataset_size": 96}, "log_alpha"),
    "reparam": ({"prior": priors.Horseshoe(), "dataset_size": 96}, "magnitude"),
}


def _train(family, policy):
    keras.config.set_dtype_policy(policy)
    try:
        kw, score = FAMILIES[family]
        keras.utils.set_random_seed(0)
        model = models.lenet_300_100(family=family, input_shape=(8, 8, 1), **kw)
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x, y = rng.random((96, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 96)
        history = model.fit(x, y, batch_size=24, epochs=2, verbose=0,
                            callbacks=[pruning.PruneCallback(pruning.Every(3, fraction=0.3), score=score, verbose=0)])
        return model, history.history["loss"]
    finally:
        keras.config.set_dtype_policy("float32")


@functools.lru_cache(maxsize=None)
def _float32_losses(family):
    return _train(family, "float32")[1]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_under_mixed_precision(family, policy):
    model, losses = _train(family, policy)
    reference = _float32_losses(family)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    model(np.zeros((4, 8, 8, 1), np.float32), training=True)
    assert (family == "masked") != bool(model.losses)  # the L0 and KL penalties, in float32
    assert all(loss.dtype == "float32" for loss in model.losses)
    layers = pruning.prunable_layers(model)
    for layer in layers:
        kernel, mask = np.asarray(layer.kernel), np.asarray(layer.mask)
        assert np.all(kernel[mask == 0] == 0.0), layer.name
        bayesian = family in ("flipout", "local_reparam", "reparam")
        assert layer.compute_dtype == ("float32" if bayesian else policy.split("_")[1]), layer.name
    assert pruning.sparsity(model)["total"] > 0.5
    np.testing.assert_allclose(losses, reference, rtol=0.02)


def test_precision_flag_runs_a_lottery_level_and_an_l0_run(tmp_path, digits_dir):
    data = DatasetHparams(batch_size=20, validation_size=40)
    lottery = LotteryHparams(data, training=TrainingHparams(iterations=40, eval_every=20, precision="mixed_float16"))
    folder = lottery_runner.run(lottery, levels=1, controls=(), root=str(tmp_path), data_dir=digits_dir,
                                verbose=False)
    level = lottery_paths.branch_dir(lottery_paths.replicate_dir(folder, 0), 1, "main")
    model = lottery_runner.build_model(lottery, 0)
    assert model.dtype_policy.name == "mixed_float16" and keras.config.dtype_policy().name == "float32"
    model.load_weights(lottery_paths.final_weights(level))
    masks = io.read_masks(lottery_paths.branch_masks(level))
    for layer in pruning.prunable_layers(model):
        assert np.all(np.asarray(layer.kernel)[masks[layer.name] == 0] == 0.0)
    assert io.read_json(lottery_paths.metrics(level))["final_test_acc"] > 0.5  # it learnt (chance: 0.1)
    sparse = TrainerHparams(data, ModelHparams("lenet_300_100"),
                            TrainingHparams(iterations=40, eval_every=20, precision="mixed_bfloat16"),
                            SparsityHparams(penalty="l0", gates="weight", strength=1.0))
    metrics = trainer_runner.train_seed(sparse, str(tmp_path / "l0"), 0, load_data(sparse, digits_dir), verbose=False)
    assert np.isfinite(metrics["rows"][-1]["val_loss"]) and metrics["final_test_acc"] > 0.5
