"""Runs repeat bit for bit (README, `tflth.determinism`): the same command, in two processes side
by side, writes the same metrics, masks and weights, with XLA (which --deterministic keeps on
CPUs) and without it (where --deterministic turns on TensorFlow's op determinism)."""
import glob
import json
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

from idx_files import learnable_digits, write_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Measured in seconds of wall or CPU time, or describing the process rather than the result.
CLOCK_KEYS = {"seconds", "cpu_seconds", "time_split", "versions", "compiled"}


def _noisy_digits(n, seed):
    """Learnable digits with a third of the labels drawn at random, so that accuracies are not all 1."""
    images, labels = learnable_digits(n, seed)
    rng = np.random.default_rng(seed + 100)
    flip = rng.random(n) < 1 / 3
    labels[flip] = rng.integers(0, 10, int(flip.sum())).astype(np.uint8)
    return images, labels


def _without_clock(value):
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k not in CLOCK_KEYS}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def _files(root, pattern):
    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "**", pattern), recursive=True))


def _h5_arrays(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: out.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return out


def _side_by_side(tmp_path, recipe, flags):
    """Runs `recipe` with `flags` in two processes at once, on small MNIST-format data; returns
    their two roots."""
    data = str(tmp_path / "digits")
    write_mnist(data, _noisy_digits(160, seed=0), _noisy_digits(40, seed=1))
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    # CPUs alone (what is measured to be deterministic under XLA), as on the CI machine.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    for name in ("TFLTH_DATA_DIR", "TF_DETERMINISTIC_OPS"):
        env.pop(name, None)
    args = [sys.executable, os.path.join(REPO, "recipes", recipe), *flags, f"--data_dir={data}"]
    # Side by side: two processes, each with its own TensorFlow, random generators and thread pools.
    procs = [subprocess.Popen([*args, f"--root={root}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for root in roots]
    try:
        errors = [proc.communicate(timeout=600)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, err in zip(procs, errors):
        assert proc.returncode == 0, err[-2000:]
        assert "warning: --deterministic" not in err  # XLA is deterministic on CPU: nothing to warn about
    return roots


def _compiled(root):
    """The `compiled` entry of every metrics.json under `root`."""
    entries = []
    for name in _files(root, "metrics.json"):
        with open(os.path.join(root, name)) as f:
            entries.append(json.load(f)["compiled"])
    return entries


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "no_xla"])
def test_the_quick_lottery_run_repeats_bit_for_bit_across_processes(tmp_path, jit_compile):
    roots = _side_by_side(tmp_path, "mnist_lth.py", [
        "--flagfile=recipes/flags/mnist_lth_quick.cfg", "--iterations=10", "--eval_every=5", "--batch_size=20",
        "--validation_size=40", "--levels=1", f"--jit_compile={str(jit_compile).lower()}"])
    # What was compared is what was asked for: XLA kept under --deterministic, or not used.
    assert {c["jit_compile"] for c in _compiled(roots[0])} == {jit_compile}
    assert_same_results(*roots)


@pytest.mark.parametrize("recipe,flagfile,extra", [
    ("mnist_bayes.py", "mnist_bayes_snr.cfg", ["--prune_start=5", "--prune_end=15", "--prune_every=5",
                                               "--mc_samples=2"]),
    ("mnist_l0.py", "mnist_l0_weight.cfg", ["--jit_compile=true"]),
    ("mnist_prune.py", "mnist_gradual.cfg", ["--model=resnet20", "--prune_start=5", "--prune_every=5"]),
], ids=["flipout_snr", "l0_weight_gates", "resnet20_batchnorm"])
def test_a_training_repeats_bit_for_bit_with_xla(tmp_path, recipe, flagfile, extra):
    """Layers that draw noise every step (Bayesian weights, L0 gates) and convolutions with
    BatchNorm, under XLA: the same final weights, rows and test predictions in both processes."""
    roots = _side_by_side(tmp_path, recipe, [
        f"--flagfile=recipes/flags/{flagfile}", "--iterations=20", "--eval_every=10", "--batch_size=20",
        "--validation_size=40", *extra])
    assert {c["jit_compile"] for c in _compiled(roots[0])} == {True}
    metrics = _files(roots[0], "metrics.json")
    assert len(metrics) == 1 and metrics == _files(roots[1], "metrics.json")
    with open(os.path.join(roots[0], metrics[0])) as f:
        first = json.load(f)
    with open(os.path.join(roots[1], metrics[0])) as f:
        second = json.load(f)
    assert first["rows"] and _without_clock(first) == _without_clock(second)
    weights = _files(roots[0], "final.weights.h5")
    x, y = (_h5_arrays(os.path.join(root, weights[0])) for root in roots)
    assert sorted(x) == sorted(y) and x
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def assert_same_results(a, b):
    """Every branch's metrics (less the clock keys), every .npz and every final weight of the run
    folders under roots `a` and `b` are identical."""
    metrics = _files(a, "metrics.json")
    assert metrics == _files(b, "metrics.json")
    # Level 0's ticket and level 1's ticket and controls (the quick flagfile's branches).
    assert sorted(m.split(os.sep, 2)[2] for m in metrics) == [
        "level_0/main/metrics.json", "level_1/main/metrics.json", "level_1/random_prune/metrics.json",
        "level_1/reinit/metrics.json"], metrics
    for name in metrics:
        with open(os.path.join(a, name)) as f:
            first = json.load(f)
        with open(os.path.join(b, name)) as f:
            second = json.load(f)
        assert first["seconds"] > 0 and second["seconds"] > 0  # the clock keys exist, and are all that is left out
        first, second = _without_clock(first), _without_clock(second)
        rows = [row for row in first["rows"] if row["test_loss"] is not None]
        assert rows and all(row["val_loss"] is not None for row in first["rows"]), name
        for key in ("val_loss", "val_acc", "test_loss", "test_acc", "train_loss"):  # named, for a readable failure
            assert [row[key] for row in first["rows"]] == [row[key] for row in second["rows"]], (name, key)
        assert first == second, name

    masks = _files(a, "*.npz")  # the levels' and branches' masks, init.npz and rewind.npz
    assert masks == _files(b, "*.npz") and sum(m.endswith("masks.npz") for m in masks) >= 7
    for name in masks:
        with np.load(os.path.join(a, name)) as x, np.load(os.path.join(b, name)) as y:
            assert sorted(x.files) == sorted(y.files), name
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}[{key}]")
                assert x[key].dtype == y[key].dtype, (name, key)
    # The pruned levels really prune: the masks compared are not all ones.
    level_1 = next(m for m in masks if m.endswith(os.path.join("level_1", "masks.npz")))
    with np.load(os.path.join(a, level_1)) as x:
        assert 0 < min(float(x[k].mean()) for k in x.files) < 1

    weights = _files(a, "final.weights.h5")
    assert weights == _files(b, "final.weights.h5") and len(weights) == len(metrics)
    for name in weights:
        x, y = _h5_arrays(os.path.join(a, name)), _h5_arrays(os.path.join(b, name))
        assert sorted(x) == sorted(y) and x, name
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}:{key}")


def test_deterministic_keeps_xla_on_cpus_and_turns_op_determinism_on_elsewhere(monkeypatch, capsys,
                                                                               op_determinism_restored):
    import tensorflow as tf
    from tflth import determinism, engine, internals
    from tflth.engine.hparams import TrainingHparams
    from tflth.models import lenet_300_100

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("checks the rule on a machine with CPUs alone (it fakes the GPU)")
    monkeypatch.delenv("TF_DETERMINISTIC_OPS", raising=False)
    # This machine: CPUs alone, one replica. XLA is kept and nothing global changes.
    assert determinism.xla_is_deterministic()
    assert determinism.request(jit_compile=True) is False
    assert not internals.op_determinism_on() and "TF_DETERMINISTIC_OPS" not in os.environ
    assert capsys.readouterr().err == ""
    # Without XLA, TensorFlow's op determinism, and no warning: nothing is given up.
    assert determinism.request(jit_compile=False) is True
    assert internals.op_determinism_on() and os.environ["TF_DETERMINISTIC_OPS"] == "1"
    assert capsys.readouterr().err == ""
    # Op determinism already on (as TF_DETERMINISTIC_OPS in the user's environment makes it):
    # XLA is lost whatever tflth does, and one line says why.
    assert determinism.request(jit_compile=True) is True
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TF_DETERMINISTIC_OPS is set" in err

    # A GPU in sight: op determinism, and one line saying XLA is off and why.
    cpus = tf.config.list_physical_devices()
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda *args: [*cpus, gpu])
    assert not determinism.xla_is_deterministic()
    assert determinism.request(jit_compile=True) is True
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: --deterministic: training compiles without XLA")
    # The engine then compiles without XLA itself, so Keras has nothing to warn about either.
    model = lenet_300_100(family="masked")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.compile_model(model, TrainingHparams(iterations=10, eval_every=10))
    assert model.jit_compile is False
    assert not [w for w in caught if "jit_compile" in str(w.message)]
