"""tflth.export: strip, the three SavedModel formats, TFLite, the command; each export loads
without tflth and computes what the model computes."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from idx_files import learnable_digits, write_mnist
from tflth import export, io, models, pruning
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.export import saving, sparse
from tflth.lottery import run as lottery_run
from tflth.lottery.hparams import LotteryHparams
from tflth.trainer import runner as trainer
from tflth.trainer.hparams import ModelHparams, SparsityHparams, TrainerHparams

SHAPE = (28, 28, 1)


def _model(name="lenet_300_100", family="masked", keep=0.02, seed=0, **kw):
    keras.utils.set_random_seed(seed)
    if family != "masked":
        kw["dataset_size"] = 100
    model = models.get_model(name, family=family, input_shape=SHAPE, num_classes=10, **kw)
    for layer in model.layers:  # trained models have non-zero biases: so must these
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.random.default_rng(1).normal(0, 0.1, layer.bias.shape))
    if keep < 1:
        pruning.prune_to(model, 1.0 - keep, "magnitude")
    return model


def _x(n=8, seed=3):
    return np.random.default_rng(seed).uniform(size=(n,) + SHAPE).astype(np.float32)


@pytest.mark.parametrize("family,name", [("masked", "lenet5"), ("l0", "lenet5"), ("l0", "lenet_300_100"),
                                         ("flipout", "lenet_300_100"), ("local_reparam", "lenet5")])
def test_strip_gives_plain_keras_layers_with_the_models_outputs(family, name):
    model = _model(name, family, keep=0.1)
    plain = export.strip(model)
    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers)
    np.testing.assert_allclose(plain(_x()), model(_x(), training=False), atol=1e-6)
    # the pruned weights are exact zeros in the plain kernels
    kept = sum(int(np.count_nonzero(layer.kernel)) for layer in plain.layers if hasattr(layer, "kernel"))
    counts = saving.kernel_counts(model)
    assert kept == counts["weights_kept"] < 0.11 * counts["weights"]


def test_strip_folds_l0_gates_and_posterior_means():
    model = _model("lenet_300_100", "l0", keep=1.0)
    layer = model.get_layer("fc1")
    layer.log_alpha.assign(np.where(np.arange(layer.log_alpha.shape[0]) % 2, -10.0, 10.0).reshape(layer.log_alpha.shape))
    plain = export.strip(model)
    kernel = np.asarray(plain.get_layer("fc1").kernel)
    assert np.all(kernel[1::2] == 0) and np.any(kernel[::2] != 0)  # closed input gates: zero rows


def test_csr_round_trip_and_product():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(7, 40)) * (rng.uniform(size=(7, 40)) < 0.1)
    matrix[3] = matrix[-1] = 0  # empty rows, the last one too
    values, columns, pointers = sparse.to_csr(matrix)
    assert columns.dtype == np.int16 and pointers.dtype == np.int32 and len(values) == np.count_nonzero(matrix)
    np.testing.assert_array_equal(sparse.from_csr(values, columns, pointers, matrix.shape), matrix.astype(np.float32))
    x = rng.normal(size=(5, 40)).astype(np.float32)
    np.testing.assert_allclose(sparse.csr_matmul(x, values, columns, pointers, matrix.shape), x @ matrix.T,
                               rtol=1e-5, atol=1e-5)
    assert sparse.to_csr(np.ones((2, 40000)))[1].dtype == np.int32  # wide rows need 32-bit indices


def test_every_format_loads_without_tflth_and_computes_the_same(tmp_path):
    model = _model("lenet5", keep=0.02)
    x = _x(16)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", np.asarray(model(x, training=False)))
    reports = {f: export.save_sparse(model, str(tmp_path / f), format=f) for f in export.FORMATS}
    reports["tflite"] = export.to_tflite(model, str(tmp_path / "m.tflite"))
    script = (
        "import sys; sys.modules['tflth'] = None\n"  # `import tflth` now fails
        "import numpy as np, tensorflow as tf\n"
        f"d = {str(tmp_path)!r}; x = np.load(d + '/x.npy'); want = np.load(d + '/expected.npy')\n"
        f"for f in {list(export.FORMATS)!r}:\n"
        "    loaded = tf.saved_model.load(d + '/' + f)\n"
        "    got = loaded.serve(x).numpy()\n"
        "    print(f, float(np.abs(got - want).max()))\n"
        "i = tf.lite.Interpreter(model_path=d + '/m.tflite')\n"
        "i.resize_tensor_input(i.get_input_details()[0]['index'], x.shape); i.allocate_tensors()\n"
        "i.set_tensor(i.get_input_details()[0]['index'], x); i.invoke()\n"
        "print('tflite', float(np.abs(i.get_tensor(i.get_output_details()[0]['index']) - want).max()))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    differences = dict(line.split() for line in out.strip().splitlines())
    assert sorted(differences) == sorted(export.FORMATS + ("tflite",))
    assert all(float(d) <= 1e-5 for d in differences.values()), differences
    # sizes: the sparse kernels are near the CSR limit, far below the dense ones
    dense, sparse_, compact = reports["dense"], reports["sparse"], reports["compact"]
    assert sparse_["variable_bytes"] <= 1.25 * sparse_["csr_limit_bytes"]
    assert sparse_["csr_bytes"] == sparse_["csr_limit_stored_index_bytes"]  # nothing stored beyond CSR itself
    assert dense["variable_bytes"] > 15 * sparse_["variable_bytes"]
    assert compact["parameters"] < dense["parameters"] and dense["parameters"] == model.count_params() - sum(
        int(np.prod(layer.mask.shape)) for layer in pruning.prunable_layers(model))
    assert reports["tflite"]["bytes"] < dense["bytes"] / 5
    assert json.load(open(tmp_path / "sparse" / saving.REPORT))["format"] == "sparse"


def test_compact_export_removes_pruned_units(tmp_path):
    model = _model("lenet_300_100", keep=1.0)
    pruning.prune_units(model, 0.5)
    report = export.save_sparse(model, str(tmp_path / "c"), format="compact")
    assert report["units"] == "150-50-10" and report["units_before"] == "300-100-10"
    assert report["parameters"] == 784 * 150 + 150 + 150 * 50 + 50 + 50 * 10 + 10


def _layers_model(kind):
    """Small models whose layers the sparse format must reproduce."""
    keras.utils.set_random_seed(0)
    from tflth.layers import MaskedConv2D, MaskedDense
    if kind == "dense_rank3":
        inputs = keras.Input((5, 12))
        x = MaskedDense(7, activation="tanh", name="a")(inputs)
        return keras.Model(inputs, MaskedDense(3, use_bias=False, name="b")(x))
    inputs = keras.Input((12, 12, 3))
    conv = {"strided_same": dict(strides=2, padding="same"), "dilated": dict(dilation_rate=2),
            "no_bias": dict(use_bias=False, kernel_size=(2, 3))}[kind]
    x = MaskedConv2D(6, conv.pop("kernel_size", 3), activation="sigmoid", name="a", **conv)(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = MaskedConv2D(4, 3, name="empty")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, MaskedDense(3, name="out")(x))


@pytest.mark.parametrize("kind", ["dense_rank3", "strided_same", "dilated", "no_bias"])
def test_sparse_format_reproduces_each_kind_of_layer(kind, tmp_path):
    model = _layers_model(kind)
    pruning.prune_to(model, 0.7, allocation="uniform")
    if kind != "dense_rank3":  # a layer with no weight left, and trained BatchNorm statistics
        pruning.set_masks(model, {"empty": np.zeros(model.get_layer("empty").mask.shape, "float32")})
        bn = model.get_layer("bn")
        bn.moving_mean.assign(np.linspace(-1, 1, 6).astype("float32"))
        bn.moving_variance.assign(np.linspace(0.5, 2, 6).astype("float32"))
    x = np.random.default_rng(0).normal(size=(4,) + tuple(model.input_shape[1:])).astype("float32")
    export.save_sparse(model, str(tmp_path / "m"), format="sparse", sample=x)
    np.testing.assert_allclose(saving.saved_model_predictor(str(tmp_path / "m"))(x), model(x, training=False),
                               atol=1e-5)


def test_strip_copies_nested_models_and_refuses_what_keras_would_compute_wrongly():
    from tflth.layers import MaskedConv2D, MaskedDense
    inner = keras.Sequential([keras.Input((6,)), MaskedDense(5, name="inner_fc"), keras.layers.BatchNormalization()],
                             name="inner")
    inputs = keras.Input((6,))
    model = keras.Model(inputs, MaskedDense(2, name="out")(inner(inputs)))
    pruning.prune_to(model, 0.5)
    plain = export.strip(model)
    classes = {type(layer).__module__.split(".")[0] for layer in plain._flatten_layers(include_self=False)}
    assert classes == {"keras"}
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(plain(x), model(x, training=False), atol=1e-6)
    inputs = keras.Input((4, 6, 6))
    first = keras.Model(inputs, MaskedConv2D(4, 3, data_format="channels_first", name="cf")(inputs))
    with pytest.raises(ValueError, match="layer 'cf': a channels_first Conv2D with a bias cannot be exported"):
        export.strip(first)


def test_compact_refuses_a_hidden_softmax(tmp_path):
    from tflth.layers import MaskedDense
    inputs = keras.Input((6,))
    x = MaskedDense(5, activation="softmax", name="mix")(inputs)
    model = keras.Model(inputs, MaskedDense(2, name="out")(x))
    pruning.prune_to(model, 0.5)
    with pytest.raises(ValueError, match="layer 'mix': its softmax activation mixes the units"):
        export.save_sparse(model, str(tmp_path / "never"), format="compact")
    assert os.listdir(tmp_path) == []


def test_bad_format_and_existing_path_are_refused_and_overwrite_replaces(tmp_path):
    model = _model(keep=0.1)
    with pytest.raises(ValueError, match="format='csr' is unknown; allowed: dense, sparse, compact"):
        export.save_sparse(model, str(tmp_path / "m"), format="csr")
    (tmp_path / "m").mkdir()
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        export.save_sparse(model, str(tmp_path / "m"), format="dense")
    export.save_sparse(model, str(tmp_path / "m"), format="dense", overwrite=True)
    assert os.path.exists(tmp_path / "m" / "saved_model.pb") and sorted(os.listdir(tmp_path)) == ["m"]
    (tmp_path / "m.tflite").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        export.to_tflite(model, str(tmp_path / "m.tflite"))
    assert (tmp_path / "m.tflite").read_bytes() == b"old"


def test_an_unpruned_model_warns_and_still_exports(tmp_path):
    with pytest.warns(UserWarning, match="not pruned"):
        report = export.save_sparse(_model(keep=1.0), str(tmp_path / "m"), format="sparse")
    assert report["weights_kept"] == report["weights"]


def test_an_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    def dies(model, path):
        open(os.path.join(path, "saved_model.pb"), "w").close()
        raise KeyboardInterrupt

    monkeypatch.setattr(saving, "write_saved_model", dies)
    with pytest.raises(KeyboardInterrupt):
        export.save_sparse(_model(keep=0.1), str(tmp_path / "m"), format="sparse")
    assert os.listdir(tmp_path) == []


def test_a_mismatching_export_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(saving, "saved_model_predictor", lambda path: lambda x: np.zeros((len(x), 10)))
    with pytest.raises(RuntimeError, match="outputs differ from the model's by .* nothing was written"):
        export.save_sparse(_model(keep=0.1), str(tmp_path / "m"), format="dense")
    assert os.listdir(tmp_path) == []


def test_non_finite_weights_are_refused_by_name(tmp_path):
    model = _model(keep=0.1)
    kernel = model.get_layer("fc2").kernel
    values = kernel.numpy()
    values[0, :2] = [np.nan, np.inf]
    kernel.assign(values)
    model.get_layer("output").bias.assign(np.full(10, np.nan, np.float32))
    message = r"model '.*' has weights that are NaN or infinite: fc2/kernel \(2 of 30,000\), output/bias \(10 of 10\)"
    with pytest.raises(ValueError, match=message + "; nothing was written$"):
        export.save_sparse(model, str(tmp_path / "m"), format="dense")
    with pytest.raises(ValueError, match=message):
        export.to_tflite(model, str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


def test_unsupported_layers_and_subclassed_models_are_named():
    class Masked1D(pruning.Prunable, keras.layers.Conv1D):  # a prunable kind of your own: exports as Conv1D
        def build(self, input_shape):
            super().build(input_shape)
            self.mask = self.add_weight(shape=self.kernel.shape, initializer="zeros", trainable=False)

        def deterministic_weights(self):
            return self.kernel * self.mask, self.bias

        def apply_mask(self):
            self.kernel.assign(self.kernel * self.mask)

    inputs = keras.Input((8, 2))
    model = keras.Model(inputs, Masked1D(3, 2, name="odd", bias_initializer="ones")(inputs))
    plain = export.strip(model)
    assert type(plain.get_layer("odd")) is keras.layers.Conv1D
    np.testing.assert_array_equal(plain(np.ones((1, 8, 2))), np.ones((1, 7, 3)))  # the mask of zeros folded in

    class Weightless(pruning.Prunable, keras.layers.Layer):  # a prunable layer that extends no Keras kind
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(2, 2))
            self.mask = self.add_weight(shape=(2, 2), initializer="ones", trainable=False)

        def call(self, x):
            return x @ self.kernel

        def deterministic_weights(self):
            return self.kernel, None

    inputs = keras.Input((2,))
    with pytest.raises(ValueError, match=r"layer 'odd' \(.*Weightless\) cannot be exported: it extends no Keras "
                                         r"layer with weights$"):
        export.strip(keras.Model(inputs, Weightless(name="odd")(inputs)))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="mine")
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Subclassed()
    sub(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="model 'mine' cannot be copied layer by layer"):
        export.strip(sub)


# --- the command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = str(root / "digits")
    write_mnist(data, learnable_digits(240, seed=0), learnable_digits(300, seed=1))
    dataset, training = DatasetHparams(batch_size=20, validation_size=40), TrainingHparams(iterations=20, eval_every=10)
    lottery = lottery_run(LotteryHparams(dataset, training=training), levels=2, controls=(), root=str(root),
                          data_dir=data, verbose=False)
    l0 = trainer.run(TrainerHparams(dataset, ModelHparams(), training, SparsityHparams(strength=1.0)),
                     root=str(root), data_dir=data, verbose=False)
    bayes = trainer.run(TrainerHparams(dataset, ModelHparams(), training, SparsityHparams(
        penalty="none", strength=1.0, prior="log_uniform", estimator="local_reparam", mc_samples=0, prune_score="log_alpha",
        prune_to=10.0, prune_every=5, prune_end=15)), root=str(root), data_dir=data, verbose=False)
    return {"root": root, "data": data, "lottery": lottery, "l0": l0, "bayes": bayes}


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tflth", "export", *args], capture_output=True, text=True, env=env)


def _error(done):
    """The command's one error line (TensorFlow's own start-up lines aside)."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    return lines[0]


def test_command_exports_a_lottery_level_and_reports_sizes(runs):
    out = runs["root"] / "ticket"
    done = _cli(f"--run_dir={runs['lottery']}", "--level=2", "--format=sparse", f"--out={out}",
                f"--data_dir={runs['data']}")
    assert done.returncode == 0, done.stderr
    assert "level 2 (main) as sparse" in done.stdout and "CSR limit" in done.stdout
    kept = float(done.stdout.split("weights kept")[1].split("(")[1].split("%")[0])
    assert abs(kept - 100 * 0.8 ** 2) < 1.0  # two levels of 20% (the lottery default)
    accuracies = done.stdout.split("test accuracy")[1].split("%")
    assert accuracies[0].strip() == accuracies[1].split(",")[1].strip()  # model and export agree
    assert os.path.exists(out / "saved_model.pb")


def test_command_exports_a_bayesian_run_compacted(runs):
    out = runs["root"] / "svd"
    done = _cli(f"--run_dir={runs['bayes']}", "--format=compact", f"--out={out}", f"--data_dir={runs['data']}")
    assert done.returncode == 0, done.stderr
    assert "seed 0 as compact" in done.stdout and "(10.00%)" in done.stdout and "units " in done.stdout
    accuracies = done.stdout.split("test accuracy")[1].split("%")
    assert accuracies[0].strip() == accuracies[1].split(",")[1].strip()
    recorded = io.read_json(str(out / "tflth_export.json"))  # the accuracies are kept with the export
    assert f"{100 * recorded['test_accuracy']:.2f}" == accuracies[1].split(",")[1].strip()


def test_command_exports_a_sparse_training_run_as_tflite(runs):
    out = runs["root"] / "l0.tflite"
    done = _cli(f"--run_dir={runs['l0']}", "--format=tflite", f"--out={out}", f"--data_dir={runs['data']}")
    assert done.returncode == 0, done.stderr
    assert "seed 0 as tflite" in done.stdout and os.path.getsize(out) > 0


@pytest.mark.parametrize("args,message", [
    (["--format=zip"], "--format='zip' is unknown; allowed: dense, sparse, compact, tflite"),
    (["--level=7"], "--level=7: give a finished level of"),
    ([], "--level=None: give a finished level"),
    (["--level=1", "--seed=3"], "finished: none"),
    (["--level=1", "--branch=mian"], "--branch='mian' is unknown; allowed: main, reinit"),
    (["--level=1", "model.keras"], "unexpected arguments ['model.keras']; flags look like --name=value"),
])
def test_command_bad_input_is_one_line(runs, args, message):
    out = runs["root"] / "never"
    done = _cli(f"--run_dir={runs['lottery']}", f"--out={out}", f"--data_dir={runs['data']}", *args)
    assert message in _error(done)
    assert not os.path.exists(out)


def test_command_refuses_an_existing_out_and_a_level_for_sparse_runs(runs):
    done = _cli(f"--run_dir={runs['l0']}", f"--out={runs['root']}", "--format=dense")
    assert "exists; pass --overwrite" in _error(done)
    done = _cli(f"--run_dir={runs['l0']}", "--level=1", f"--out={runs['root'] / 'x'}")
    assert "only lottery runs have levels" in _error(done)
    done = _cli(f"--run_dir={runs['l0']}", "--format=tflite", "--overwrite", f"--out={runs['root']}")
    assert "is a folder; --format=tflite writes a file" in _error(done)
    below_a_file = runs["root"] / "digits" / "train-images-idx3-ubyte.gz" / "x"
    done = _cli(f"--run_dir={runs['l0']}", f"--out={below_a_file}")
    assert f"--out={below_a_file} cannot be written: {below_a_file.parent} is a file, not a folder" in _error(done)


def test_unwritable_out_says_why_and_leaves_nothing(tmp_path):
    from tflth.export.cli import unwritable
    assert unwritable(str(tmp_path / "m")) is None and unwritable(str(tmp_path / "a" / "b" / "m")) is None
    assert os.listdir(tmp_path) == []  # the probe is gone, and no folder was made
    (tmp_path / "f").write_text("")
    assert unwritable(str(tmp_path / "f" / "a" / "m")) == f"{tmp_path / 'f'} is a file, not a folder"
    assert unwritable("/proc/m").startswith("cannot write in /proc")


def test_command_names_an_out_it_cannot_write(runs):
    # asked before the model is loaded: --run_dir is not even looked at
    done = _cli("--run_dir=/no/such/run", "--out=/proc/x")
    assert _error(done).startswith("error: --out=/proc/x cannot be written: ")
    # a folder that cannot be made: found early by a user without rights, when writing by root
    done = _cli(f"--run_dir={runs['l0']}", "--out=/proc/nope/x", "--format=dense", f"--data_dir={runs['data']}")
    assert _error(done).startswith("error: --out=/proc/nope/x cannot be written: ") and not os.path.exists("/proc/nope")


def test_docs_example_runs_as_written(mnist_dir, tmp_path, monkeypatch):
    import re
    text = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "export.md")).read()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("TFLTH_DATA_DIR", os.path.abspath(mnist_dir))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "docs/export.md", "exec"), scope)
    assert sorted(os.listdir(tmp_path)) == ["lenet.tflite", "lenet_compact", "lenet_sparse"]
    assert scope["report"]["variable_bytes"] < scope["report"]["csr_limit_bytes"]
    np.testing.assert_allclose(scope["logits"], scope["model"](scope["x"], training=False), atol=1e-5)
