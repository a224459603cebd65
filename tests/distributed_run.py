"""A lottery run (or a sparse-training run) under a tf.distribute strategy, as a test's
subprocess (logical devices and TF_CONFIG must be set before TensorFlow starts).

    python distributed_run.py STRATEGY DIGITS_DIR ROOT OUT.npz LEVELS[:PRECISION]|resume|resnet|batchnorm|snip|rigl|l0|snr|fit

STRATEGY: default, mirrored2 (MirroredStrategy over 2 logical CPUs) or multi_worker (TF_CONFIG).
"resume": 2 levels, the process "killed" right after a checkpoint in the middle of level 1 and
the run resumed. "resnet": a level of ResNet-20 (BatchNorm) on random CIFAR-shaped images.
"batchnorm": the engine, then a user's fit, train BatchNorm on the input images (its statistics
do not depend on the weights) and a dense layer; OUT.npz gets each local replica's statistics.
"fit": a user's own model.fit with the Snapshot, PruneCallback and Rewind callbacks.
OUT.npz gets this process's masks and weights (from its own copy of the run), OUT.npz.json
whether it is the chief, its test accuracy and the versions its metrics record.
"""
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

name, digits, root, out, levels = sys.argv[1:6]
if name == "mirrored2":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tflth import data, distribute, engine, io, models, pruning, runs  # noqa: E402
from tflth.engine.hparams import DatasetHparams, TrainingHparams  # noqa: E402
from tflth.lottery import paths, runner  # noqa: E402
from tflth.lottery.hparams import LotteryHparams, PruningHparams  # noqa: E402
from tflth.lottery.hparams import ModelHparams as LotteryModel  # noqa: E402
from tflth.trainer import runner as trainer  # noqa: E402
from tflth.trainer.hparams import ModelHparams, SparsityHparams, TrainerHparams  # noqa: E402

DATA, TRAINING = DatasetHparams(batch_size=20, validation_size=40), TrainingHparams(iterations=40, eval_every=10)
HPARAMS = LotteryHparams(DATA, training=TRAINING)
SPARSE = {  # pruning by gradients (read in replica context), dynamic sparsity, stochastic L0 gates and
    # Bayesian (Flipout) layers with their KL term, pruned by signal-to-noise ratio
    "snip": SparsityHparams(penalty="none", prune_score="snip", prune_schedule="oneshot", prune_start=0, prune_to=20.0),
    "rigl": SparsityHparams(penalty="none", prune_score="random", prune_schedule="oneshot", prune_start=0,
                            prune_to=20.0, prune_scope="erk", dst="rigl", dst_every=10),
    "l0": SparsityHparams(penalty="l0", gates="weight", strength=1.0, prune_score="inclusion", prune_to=50.0,
                          prune_start=10, prune_end=30, prune_every=10),
    "snr": SparsityHparams(penalty="none", prior="normal", strength=1.0, estimator="flipout", prune_score="snr",
                           prune_to=50.0, prune_start=10, prune_end=30, prune_every=10),
}
tf.config.experimental.enable_op_determinism()
strategy = (distribute.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]) if name == "mirrored2"
            else distribute.get_strategy(name))
distribute.check_batch_size(HPARAMS.dataset.batch_size, strategy)

def fit():
    """Iterative pruning with rewinding inside a user's own fit: 20% at steps 10 and 20 of 30, each
    followed by a rewind of weights and optimizer to step 5."""
    x, y = data.arrays("mnist", "train", data_dir=digits, validation_size=40)
    keras.utils.set_random_seed(0)
    model = models.get_model("lenet_300_100")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    snapshot = pruning.Snapshot(5)
    prune = pruning.PruneCallback(pruning.Every(10, 0.2), scope="global", verbose=0,
                                  rewind=pruning.Rewind(snapshot, optimizer="snapshot"))
    model.fit(x.astype(np.float32) / 255, y, batch_size=20, epochs=3, shuffle=False, verbose=0,
              callbacks=[snapshot, prune])
    assert prune.pruned_at == [10, 20], prune.pruned_at
    x, y = data.arrays("mnist", "test", data_dir=digits)
    _, accuracy = model.evaluate(x.astype(np.float32) / 255, y, batch_size=20, verbose=0)
    return model, accuracy


def resumed(hparams, root):
    """2 levels, interrupted right after level 1's checkpoint at step 20, then resumed from it."""
    save, load, loaded = engine.state.save, engine.state.load, []

    def save_then_stop(path, model, *args, **kw):
        save(path, model, *args, **kw)
        if "level_1" in path and int(kw["step"]) == 20:
            raise KeyboardInterrupt
    engine.state.save = save_then_stop
    try:
        runner.run(hparams, levels=2, controls=(), root=root, data_dir=digits, verbose=False, checkpoint_seconds=0)
        raise AssertionError("level 1 was not interrupted")
    except KeyboardInterrupt:
        pass
    engine.state.save = save
    engine.state.load = lambda path: loaded.append((path, int(load(path).get("step", -1)))) or load(path)
    folder = runner.run(hparams, levels=2, controls=(), root=root, data_dir=digits, verbose=False,
                        checkpoint_seconds=0)
    assert [step for path, step in loaded if path == engine.progress_file(
        paths.branch_dir(paths.replicate_dir(folder, 0), 1, "main"))] == [20], loaded
    return folder


def cifar_shaped(n=48):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8), rng.integers(0, 10, n).astype(np.int32)
    return {"x": x[16:], "y": y[16:], "validation": engine.eval_stream(x[:8], y[:8]),
            "test": engine.eval_stream(x[8:16], y[8:16])}


def batchnorm(root):
    """Each replica's BatchNorm statistics after the engine's training ("engine/...") and after a
    user's own fit with AverageReplicaStatistics and validation ("fit/...") on the same batches."""
    hparams, statistics = dataclasses.replace(HPARAMS, training=dataclasses.replace(TRAINING, eval_every=20)), {}
    training = runs.load_data(hparams, digits)
    for how in ("engine", "fit"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.BatchNormalization(momentum=0.5, name="bn"),
                                  keras.layers.Flatten(), keras.layers.Dense(10, name="out")])
        engine.compile_model(model, TRAINING)
        if how == "engine":
            engine.train(model, training, hparams, root, verbose=False)
        else:
            model.fit(engine.train_stream(training["x"], training["y"], 20, seed=0), steps_per_epoch=20, epochs=2,
                      validation_data=training["validation"], verbose=0,
                      callbacks=[distribute.AverageReplicaStatistics()])
        layer = model.get_layer("bn")
        statistics.update({f"{how}/replica{i}/{v.name}": t.numpy() for v in (layer.moving_mean, layer.moving_variance)
                           for i, t in enumerate(strategy.experimental_local_results(v.value))})
    return statistics


with strategy.scope(), distribute.worker_root(root, strategy) as mine:
    if levels == "batchnorm":
        arrays, metrics, folder = batchnorm(mine), {"final_test_acc": None, "versions": None}, None
    elif levels == "fit":
        model, accuracy = fit()
        arrays = {"mask/" + k: v for k, v in pruning.get_masks(model).items()}
        metrics, folder = {"final_test_acc": accuracy, "versions": None}, None
    elif levels in SPARSE:
        hparams = TrainerHparams(DATA, ModelHparams("lenet_300_100"), TRAINING, SPARSE[levels])
        folder = trainer.run(hparams, root=mine, data_dir=digits, verbose=False)
        model = trainer.build_model(hparams, 0)
        model.load_weights(os.path.join(trainer.seed_dir(folder, 0), "final.weights.h5"))
        arrays = {"mask/" + k: v for k, v in pruning.get_masks(model).items()}
        metrics = io.read_json(os.path.join(trainer.seed_dir(folder, 0), "metrics.json"))
    else:
        if levels == "resume":
            hparams, levels = HPARAMS, "2"
            folder = resumed(hparams, mine)
        elif levels == "resnet":
            hparams, levels = LotteryHparams(
                DatasetHparams("cifar10", batch_size=8, validation_size=8), LotteryModel("resnet20"),
                TrainingHparams(optimizer="sgd", lr=0.05, momentum=0.9, iterations=8, eval_every=4, jit_compile=False),
                PruningHparams(scope="global", fraction_conv=-1.0, fraction_output=-1.0, rewind_iteration=2)), "1"
            folder = runner.run(hparams, levels=1, controls=(), root=mine, data=cifar_shaped(), verbose=False)
        else:
            levels, _, precision = levels.partition(":")  # "1:mixed_float16": a level in that precision
            hparams = dataclasses.replace(
                HPARAMS, training=dataclasses.replace(TRAINING, precision=precision or "float32"))
            folder = runner.run(hparams, levels=int(levels), controls=(), root=mine, data_dir=digits, verbose=False)
        level = paths.branch_dir(paths.replicate_dir(folder, 0), int(levels), "main")
        arrays = {"mask/" + k: v for k, v in io.read_masks(paths.branch_masks(level)).items()}
        model = runner.build_model(hparams, 0)
        model.load_weights(paths.final_weights(level))
        metrics = io.read_json(paths.metrics(level))
    if levels != "batchnorm":
        arrays.update({"weight/" + v.path: v.numpy() for v in model.weights})
io.write_npz(out, arrays)
io.write_json(out + ".json", {"chief": distribute.is_chief(strategy), "replicas": strategy.num_replicas_in_sync,
                              "folder": folder, "test_acc": metrics["final_test_acc"],
                              "versions": metrics["versions"], "compiled": metrics.get("compiled")})
