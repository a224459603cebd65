"""--model=package.module:function and keras.applications.NAME: the runners take your model
(tflth/models/external.py), and everything downstream (run folder, resume, export) with it."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tflth import io, models, pruning
from tflth.export import from_run, save_sparse
from tflth.lottery import paths, runner
from tflth.lottery.hparams import DatasetHparams, LotteryHparams, ModelHparams, TrainingHparams

NETS = textwrap.dedent('''
    import keras
    import tflth

    def small_cnn(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.DepthwiseConv2D(3, activation="relu", name="depthwise")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))

    def with_family(input_shape, num_classes, family, **layer_kw):
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        dense = tflth.layers.get_family(family).dense
        return keras.Model(inputs, dense(num_classes, name="logits", **layer_kw)(x))

    def not_a_model(input_shape, num_classes):
        return 3

    def wrong_arguments():
        return None
''')


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return str(tmp_path)


def test_a_function_of_yours_builds_in_any_family(nets):
    model = models.get_model("user_nets:small_cnn", family="masked", input_shape=(12, 12, 1), num_classes=3)
    assert {layer.name for layer in pruning.prunable_layers(model)} == {"conv", "depthwise", "logits"}
    l0 = models.get_model("user_nets:small_cnn", family="l0", input_shape=(12, 12, 1), num_classes=3,
                          dataset_size=10)
    assert {type(layer).__qualname__ for layer in pruning.prunable_layers(l0)} == {"L0Conv2D", "L0Dense"}
    own = models.get_model("user_nets:with_family", family="l0", input_shape=(4, 4, 1), num_classes=2,
                           dataset_size=10, droprate_init=0.2)
    assert own.get_layer("logits").droprate_init == 0.2  # a function that takes family builds its layers itself
    plain = models.get_model("user_nets:small_cnn", family="plain", input_shape=(12, 12, 1), num_classes=3)
    assert not pruning.prunable_layers(plain)


def test_a_keras_application_by_name():
    model = models.get_model("keras.applications.MobileNetV2", family="masked", input_shape=(32, 32, 3),
                             num_classes=4)
    assert model.output.shape == (None, 4) and model.layers[-1].activation.__name__ == "linear"  # logits
    assert len(pruning.prunable_layers(model)) == 53


@pytest.mark.parametrize("name, message", [
    ("nosuch", r"^--model='nosuch': allowed: conv2, .*, keras.applications.NAME or package.module:function$"),
    ("keras.applications.Nope", r"^--model='keras.applications.Nope': keras.applications has no such model; "
                                r"allowed: .*MobileNetV2"),
    ("keras.applications.imagenet_utils", r"keras.applications has no such model"),
    ("no_such_module:f", r"^--model='no_such_module:f': module 'no_such_module' does not import "
                         r"\(ModuleNotFoundError: No module named 'no_such_module'\)$"),
    ("user_nets:nothing", r"^--model='user_nets:nothing': module 'user_nets' has no function 'nothing'$"),
    ("user_nets:", r"^--model='user_nets:': expected a tflth model name"),
])
def test_a_name_that_names_no_model_is_one_line(nets, name, message):
    with pytest.raises(ValueError, match=message):
        ModelHparams(model=name)


@pytest.mark.parametrize("name, message", [
    ("user_nets:not_a_model", r"^--model='user_nets:not_a_model' returned int, not a keras.Model$"),
    ("user_nets:wrong_arguments", r"^--model='user_nets:wrong_arguments' cannot be built for input shape \(28, 28, "
                                  r"1\) and 10 classes: .*unexpected keyword argument 'input_shape'$"),
    ("keras.applications.MobileNetV2", r"^--model='keras.applications.MobileNetV2' cannot be built for input "
                                       r"shape \(28, 28, 1\) and 10 classes: Input size must be at least 32x32"),
])
def test_a_model_that_cannot_be_built_is_refused_before_anything_is_written(nets, tmp_path, name, message):
    hparams = LotteryHparams(DatasetHparams(batch_size=20), ModelHparams(model=name),
                             training=TrainingHparams(iterations=20, eval_every=10))
    with pytest.raises(ValueError, match=message):
        runner.check_run_args(hparams, levels=1, controls=(), root=str(tmp_path / "runs"))
    assert not os.path.exists(tmp_path / "runs")


def test_the_lottery_runner_resumes_and_exports_your_model(nets, tmp_path, digits_dir):
    hparams = LotteryHparams(DatasetHparams(batch_size=20, validation_size=40),
                             ModelHparams(model="user_nets:small_cnn"), training=TrainingHparams(iterations=20, eval_every=10))
    run = runner.run(hparams, levels=1, controls=(), root=str(tmp_path / "runs"), data_dir=digits_dir, verbose=False)
    masks = io.read_masks(paths.branch_masks(paths.branch_dir(paths.replicate_dir(run, 0), 1, "main")))
    assert set(masks) == {"conv", "depthwise", "logits"} and all(m.mean() < 1 for m in masks.values())
    assert runner.run(hparams, levels=1, controls=(), root=str(tmp_path / "runs"), data_dir=digits_dir,
                      verbose=False) == run  # a finished run: found by its hash, nothing retrained
    out = str(tmp_path / "export")
    model, _, _ = from_run.load(run, level=1)  # rebuilt from hparams.json: the function is imported again
    report = save_sparse(model, out, format="sparse")
    assert report["stored_dense"] == ["depthwise"]
    # The export loads in a process without tflth (and without the module of the model function).
    code = ("import sys, numpy as np, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
            "print(m.serve(np.zeros((2, 28, 28, 1), np.float32)).shape); "
            "assert 'tflth' not in sys.modules and 'user_nets' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(2, 10)" in result.stdout
    assert np.isfinite(report["max_abs_difference"])


def test_the_sparse_training_runner_trains_your_model_with_l0_gates(nets, tmp_path, digits_dir):
    from tflth.trainer import runner as trainer
    from tflth.trainer.hparams import ModelHparams as TrainerModel
    from tflth.trainer.hparams import SparsityHparams, TrainerHparams
    hparams = TrainerHparams(DatasetHparams(batch_size=20, validation_size=40), TrainerModel("user_nets:small_cnn"),
                             TrainingHparams(iterations=20, eval_every=10),
                             SparsityHparams(per_layer="conv.droprate_init=0.2"))  # L0 gates, the default
    run = trainer.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    model = trainer.build_model(hparams, 0)
    assert {type(layer).__qualname__ for layer in pruning.prunable_layers(model)} == {"L0Conv2D", "L0Dense"}
    assert model.get_layer("conv").droprate_init == 0.2 and model.get_layer("logits").droprate_init == 0.5
    assert os.path.exists(os.path.join(run, "hparams.json"))
