"""The quick lottery run repeats bit for bit (README): the same command, in two processes, writes
the same metrics, masks and weights."""
import glob
import json
import os
import subprocess
import sys

import h5py
import numpy as np

from idx_files import learnable_digits, write_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Measured in seconds of wall or CPU time, or describing the process rather than the result.
CLOCK_KEYS = {"seconds", "cpu_seconds", "versions", "compiled"}


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


def test_the_quick_lottery_run_repeats_bit_for_bit_across_processes(tmp_path):
    data = str(tmp_path / "digits")
    write_mnist(data, _noisy_digits(160, seed=0), _noisy_digits(40, seed=1))
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TFLTH_DATA_DIR", None)
    args = [sys.executable, os.path.join(REPO, "recipes", "mnist_lth.py"),
            "--flagfile=recipes/flags/mnist_lth_quick.cfg", "--iterations=10", "--eval_every=5",
            "--batch_size=20", "--validation_size=40", "--levels=1", f"--data_dir={data}"]
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
    assert_same_results(*roots)


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
