"""The tasks derived from MNIST: mnist_permuted and mnist_0to4_vs_5to9."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tflth import data
from tflth.data import loaders
from tflth.engine.hparams import DatasetHparams
from idx_files import write_mnist

DERIVED = ("mnist_permuted", "mnist_0to4_vs_5to9")
# np.random.RandomState(0).permutation(784), as docs/datasets.md states: pinned, so that a
# change of seed, generator or numpy stream fails here instead of silently changing the task.
ORDER_HEAD = [693, 85, 647, 392, 765, 14, 299, 711]
ORDER_SHA256 = "fe62e3fef305ce16e55f08cd0056a8b237e12af6c9523ff3fb35395f6ec55222"


def _position_images(n, seed):
    """n images: image 0 holds each pixel's position mod 256, image 1 the position // 256,
    the rest random; after a permutation, images 0 and 1 spell out the order."""
    position = np.arange(28 * 28).reshape(28, 28)
    rest = np.random.default_rng(seed).integers(0, 256, (n - 2, 28, 28))
    images = np.concatenate([[position % 256, position // 256], rest]).astype(np.uint8)
    return images, np.arange(n, dtype=np.uint8) % 10


def _order(x):
    """The pixel order images 0 and 1 of `x` (see _position_images) reveal."""
    return x[1].reshape(-1).astype(np.int64) * 256 + x[0].reshape(-1)


@pytest.fixture
def positions(tmp_path):
    """An MNIST folder whose train and test splits (and the validation split of
    validation_size=9, its last 9 train images) each start with two position images."""
    images, labels = _position_images(20, 1)
    images[11:13] = images[:2]  # the first two of the last 9
    write_mnist(str(tmp_path), (images, labels), _position_images(6, 2))
    return str(tmp_path)


def test_permutation_is_the_documented_fixed_one_for_every_split(positions):
    orders = [_order(data.arrays("mnist_permuted", split, data_dir=positions, validation_size=9)[0])
              for split in data.SPLITS]
    for order in orders:
        np.testing.assert_array_equal(order, orders[0])  # train, validation and test alike
    order = orders[0]
    assert sorted(order) == list(range(784))  # a permutation of the 784 pixels
    assert (order != np.arange(784)).mean() > 0.99  # far from the identity
    assert order[:8].tolist() == ORDER_HEAD
    assert hashlib.sha256(order.tobytes()).hexdigest() == ORDER_SHA256
    assert data.PERMUTATION_SEED == 0
    np.testing.assert_array_equal(order, np.random.RandomState(0).permutation(784))


def test_permuted_mnist_keeps_images_and_labels(monkeypatch):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    for split in data.SPLITS:
        x, y = data.arrays("mnist_permuted", split)
        x0, y0 = data.arrays("mnist", split)
        assert x.shape == x0.shape and x.dtype == np.uint8 and not x.flags.writeable
        np.testing.assert_array_equal(y, y0)
        flat, flat0 = x.reshape(len(x), -1), x0.reshape(len(x0), -1)
        np.testing.assert_array_equal(np.sort(flat, axis=1), np.sort(flat0, axis=1))  # same pixels
        assert (flat != flat0).any(axis=1).mean() > 0.99  # at new places
        np.testing.assert_array_equal(flat, flat0[:, np.random.RandomState(0).permutation(784)])


def test_permutation_is_the_same_after_a_fresh_read_and_in_another_process(monkeypatch):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    first = data.arrays("mnist_permuted", "test")[0]
    monkeypatch.setattr(loaders, "_CACHE", {})  # read and permute again
    again = data.arrays("mnist_permuted", "test")[0]
    assert again is not first
    np.testing.assert_array_equal(again, first)
    code = ("import hashlib; from tflth import data; "
            "print(hashlib.sha256(data.arrays('mnist_permuted', 'test')[0].tobytes()).hexdigest())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TFLTH_DATA_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    assert out == hashlib.sha256(first.tobytes()).hexdigest()


def test_split_task_labels_are_digit_at_least_5(monkeypatch):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    for split in data.SPLITS:
        x, y = data.arrays("mnist_0to4_vs_5to9", split)
        x0, y0 = data.arrays("mnist", split)
        assert y.dtype == np.int32 and not y.flags.writeable
        np.testing.assert_array_equal(y, (y0 >= 5).astype(np.int32))
        assert set(np.unique(y)) == {0, 1}
        np.testing.assert_array_equal(x, x0)  # the same images, in the same order
    # MNIST's training digits 0-4 and 5-9 (tests/test_data.py's counts): about balanced.
    y_all = data.arrays("mnist_0to4_vs_5to9", "train", validation_size=0)[1]
    assert np.bincount(y_all).tolist() == [30_596, 29_404]


@pytest.mark.parametrize("name", DERIVED)
def test_info_agrees_with_the_arrays(name, monkeypatch):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    info = data.info(name)
    x_all, y_all = data.arrays(name, "train", validation_size=0)
    x_tr, _ = data.arrays(name, "train")
    x_va, _ = data.arrays(name, "validation")
    x_te, y_te = data.arrays(name, "test")
    assert (len(x_all), len(x_te)) == (info.num_train, info.num_test) == (60_000, 10_000)
    assert (len(x_tr), len(x_va)) == (info.num_train - info.validation_size, info.validation_size)
    assert x_all.shape[1:] == info.input_shape == (28, 28, 1)
    assert set(np.unique(y_all)) == set(np.unique(y_te)) == set(range(info.num_classes))
    assert info.num_classes == {"mnist_permuted": 10, "mnist_0to4_vs_5to9": 2}[name]


@pytest.mark.parametrize("name", DERIVED)
def test_validation_is_the_last_training_examples_as_for_mnist(name, positions):
    kw = dict(data_dir=positions, validation_size=9)
    x_all, y_all = data.arrays(name, "train", data_dir=positions, validation_size=0)
    x_tr, y_tr = data.arrays(name, "train", **kw)
    x_va, y_va = data.arrays(name, "validation", **kw)
    assert (len(x_all), len(x_tr), len(x_va)) == (20, 11, 9)
    np.testing.assert_array_equal(x_va, x_all[-9:])
    np.testing.assert_array_equal(y_va, y_all[-9:])
    np.testing.assert_array_equal(x_tr, x_all[:11])
    np.testing.assert_array_equal(y_tr, y_all[:11])
    # The same examples as mnist's validation split, transformed.
    _, transform = loaders._DERIVED[name]
    expected = transform(*data.arrays("mnist", "validation", **kw))
    np.testing.assert_array_equal(x_va, expected[0])
    np.testing.assert_array_equal(y_va, expected[1])


@pytest.mark.parametrize("name", DERIVED)
def test_reads_mnist_from_data_dir_env_var_and_subfolder(name, tmp_path, monkeypatch):
    top, sub = str(tmp_path / "top"), str(tmp_path / "parent")
    write_mnist(top, _position_images(5, 3), _position_images(4, 4))
    write_mnist(os.path.join(sub, "mnist"), _position_images(7, 5), _position_images(3, 6))
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    assert len(data.arrays(name, "test")[0]) == 10_000  # packaged MNIST by default
    assert len(data.arrays(name, "test", data_dir=top)[0]) == 4
    assert len(data.arrays(name, "test", data_dir=sub)[0]) == 3  # <data_dir>/mnist/
    monkeypatch.setenv("TFLTH_DATA_DIR", top)
    assert len(data.arrays(name, "test")[0]) == 4
    monkeypatch.setenv("TFLTH_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="nowhere"):
        data.arrays(name, "test")  # no silent fallback to the packaged files


@pytest.mark.parametrize("name", DERIVED)
def test_load_yields_float_images_and_labels_of_the_task(name, positions):
    ds = data.load(name, "train", 4, data_dir=positions, validation_size=9)
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 3]
    assert ds.element_spec[0].shape.as_list() == [None, 28, 28, 1]
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int32
    x_tr, y_tr = data.arrays(name, "train", data_dir=positions, validation_size=9)
    ys = np.concatenate([y.numpy() for _, y in batches])
    assert sorted(ys) == sorted(y_tr) and ys.max() < data.info(name).num_classes
    xs = np.concatenate([x.numpy() for x, _ in batches])
    assert xs.min() >= 0.0 and xs.max() <= 1.0
    np.testing.assert_allclose(np.sort(xs, axis=None), np.sort(x_tr, axis=None) / 255.0, rtol=1e-6)


def test_registry_names_and_errors_list_the_tasks():
    assert set(DERIVED) <= set(data.DATASETS)
    assert set(loaders._DERIVED) == set(DERIVED)
    with pytest.raises(ValueError) as e:
        data.load("mnist_split", "train")
    message = str(e.value)
    assert "\n" not in message and "'mnist_split'" in message
    for name in data.DATASETS:
        assert repr(name) in message


@pytest.mark.parametrize("name", DERIVED)
def test_dataset_flag_accepts_the_tasks(name):
    assert DatasetHparams(dataset=name).dataset == name
    with pytest.raises(ValueError) as e:
        DatasetHparams(dataset="mnist_perm")
    assert name in str(e.value) and "\n" not in str(e.value)
