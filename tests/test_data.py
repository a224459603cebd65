import gzip
import os
import re
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from tflth import data
from tflth.data import loaders
from idx_files import idx_bytes as _idx_bytes, write as _write, write_mnist

N_TRAIN, N_TEST = 12, 4
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _make_mnist(directory, gz=True):
    """Writes tiny MNIST-format files; image i is filled with pixel value i."""
    arrays = {}
    for prefix, n, offset in (("train", N_TRAIN, 0), ("t10k", N_TEST, 100)):
        values = np.arange(offset, offset + n, dtype=np.uint8)
        images = np.broadcast_to(values[:, None, None], (n, 28, 28)).copy()
        images[:, 0, 0] = 255  # so the float range reaches 1.0
        arrays[prefix] = images, (values % 10).astype(np.uint8)
    write_mnist(directory, arrays["train"], arrays["t10k"], gz)
    return arrays


def _ids(ds):
    """The value of pixel (1, 1) of every image in order, i.e. the example ids."""
    return [int(round(v * 255)) for x, _ in ds for v in x[:, 1, 1, 0].numpy()]


@pytest.fixture
def tiny(tmp_path):
    d = str(tmp_path / "idx")
    _make_mnist(d)
    return d


# IDX reader.

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.float32, 0x0D)])
def test_read_idx_roundtrip(tmp_path, gz, dtype, code):
    array = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    path = _write(str(tmp_path / "a-idx3"), _idx_bytes(array, code), gz)
    out = data.read_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("corrupt,message", [
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "dtype code"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\x00", "trailing"),
    (lambda b: b[:6], "truncated header"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_corrupt_names_file(tmp_path, corrupt, message, gz):
    payload = corrupt(_idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    path = _write(str(tmp_path / "bad-idx3-ubyte"), payload, gz)
    with pytest.raises(ValueError, match=message) as e:
        data.read_idx(path)
    assert path in str(e.value)


def test_read_idx_truncated_gzip_names_file(tmp_path):
    path = str(tmp_path / "x-idx1-ubyte.gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(_idx_bytes(np.zeros(100, np.uint8)))[:-10])
    with pytest.raises(ValueError, match="gzip") as e:
        data.read_idx(path)
    assert path in str(e.value)


def test_load_corrupt_file_names_it(tiny):
    path = os.path.join(tiny, "t10k-labels-idx1-ubyte.gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        data.load("mnist", "test", data_dir=tiny)


def test_mismatched_label_count_names_file(tmp_path):
    d = str(tmp_path)
    _make_mnist(d, gz=False)
    _write(os.path.join(d, "t10k-labels-idx1-ubyte"), _idx_bytes(np.zeros(3, np.uint8)), False)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        data.arrays("mnist", "test", data_dir=d)


# Loading tiny IDX folders.

@pytest.mark.parametrize("gz", [False, True])
def test_load_shapes_dtypes_range(tmp_path, gz):
    d = str(tmp_path)
    written = _make_mnist(d, gz=gz)
    ds = data.load("mnist", "test", batch_size=3, data_dir=d)
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [3, 1]
    x, y = batches[0]
    assert x.shape[1:] == (28, 28, 1) and x.dtype == tf.float32
    assert y.dtype == tf.int32
    xs = np.concatenate([x.numpy() for x, _ in batches])
    assert xs.min() >= 0.0 and xs.max() == 1.0
    ys = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(ys, written["t10k"][1])  # test split is not shuffled
    assert ds.element_spec[0].shape.as_list() == [None, 28, 28, 1]


def test_arrays_split_sizes_and_validation_is_last(tiny):
    x_all, y_all = data.arrays("mnist", "train", data_dir=tiny, validation_size=0)
    assert x_all.shape == (N_TRAIN, 28, 28, 1) and x_all.dtype == np.uint8
    assert y_all.dtype == np.int32
    x_tr, y_tr = data.arrays("mnist", "train", data_dir=tiny, validation_size=5)
    x_va, y_va = data.arrays("mnist", "validation", data_dir=tiny, validation_size=5)
    assert len(x_tr) == N_TRAIN - 5 and len(x_va) == 5
    np.testing.assert_array_equal(x_va, x_all[-5:])
    np.testing.assert_array_equal(y_tr, y_all[:-5])
    assert not x_all.flags.writeable  # the cache is shared between callers
    # load() with shuffle off yields exactly the held-out examples, in order.
    ids = _ids(data.load("mnist", "validation", 2, data_dir=tiny, validation_size=5))
    assert ids == list(range(N_TRAIN - 5, N_TRAIN))


def test_validation_size_zero(tiny):
    ds = data.load("mnist", "train", 5, data_dir=tiny, validation_size=0)
    assert sorted(_ids(ds)) == list(range(N_TRAIN))
    with pytest.raises(ValueError, match="validation_size"):
        data.load("mnist", "validation", data_dir=tiny, validation_size=0)


def test_shuffle_is_deterministic_per_seed(tiny):
    def load(seed):
        return data.load("mnist", "train", 4, data_dir=tiny, seed=seed, validation_size=2)

    first, again, other = _ids(load(0)), _ids(load(0)), _ids(load(1))
    assert first == again
    assert first != other
    assert sorted(first) == list(range(N_TRAIN - 2))  # each example once per epoch
    assert first != list(range(N_TRAIN - 2))  # shuffled by default for train
    ds = load(0)
    epochs = [_ids(ds), _ids(ds)]
    assert epochs[0] == first and epochs[1] != first  # reshuffled every epoch
    assert _ids(load(0)) == first  # a fresh pipeline starts over


def test_shuffle_is_deterministic_across_processes(tiny):
    code = ("from tflth import data; "
            f"ds = data.load('mnist', 'train', 4, data_dir={tiny!r}, seed=3, validation_size=2); "
            "print([int(round(float(v) * 255)) for x, _ in ds for v in x[:, 1, 1, 0]])")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    ds = data.load("mnist", "train", 4, data_dir=tiny, seed=3, validation_size=2)
    assert out == str(_ids(ds))


def test_repeat_and_drop_remainder(tiny):
    ds = data.load("mnist", "test", 3, data_dir=tiny, repeat=True, drop_remainder=True)
    assert ds.element_spec[0].shape.as_list() == [3, 28, 28, 1]
    batches = list(ds.take(5))  # 15 examples out of a 4-example split
    assert _ids(batches) == [100, 101, 102, 103] * 3 + [100, 101, 102]


def test_env_var_and_subfolder(tmp_path, monkeypatch):
    _make_mnist(str(tmp_path / "fashion_mnist"))
    monkeypatch.setenv("TFLTH_DATA_DIR", str(tmp_path))
    x, y = data.arrays("fashion_mnist", "test")
    assert x.shape == (N_TEST, 28, 28, 1)


def test_missing_files_named(tmp_path):
    d = str(tmp_path)
    _make_mnist(d)
    os.remove(os.path.join(d, "train-labels-idx1-ubyte.gz"))
    with pytest.raises(ValueError) as e:
        data.load("mnist", "train", data_dir=d, validation_size=2)
    assert "train-labels-idx1-ubyte" in str(e.value) and d in str(e.value)
    assert "train-images" not in str(e.value)
    data.load("mnist", "test", data_dir=d)  # the test files are all there
    with pytest.raises(ValueError, match="does not exist"):
        data.load("mnist", data_dir=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("kwargs,argument", [
    (dict(name="mnst"), "name"),
    (dict(name=None), "name"),
    (dict(split="val"), "split"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(validation_size=-1), "validation_size"),
    (dict(validation_size=N_TRAIN), "validation_size"),
    (dict(validation_size=N_TRAIN + 1), "validation_size"),
])
def test_bad_arguments(tiny, kwargs, argument):
    args = dict(name="mnist", split="train", batch_size=4, data_dir=tiny, validation_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=argument):
        data.load(args.pop("name"), args.pop("split"), args.pop("batch_size"), **args)


def test_unknown_name_lists_choices():
    allowed = "'cifar10', 'cifar100', 'fashion_mnist', 'imagenet2012', 'mnist', " \
              "'mnist_0to4_vs_5to9', 'mnist_permuted'"
    with pytest.raises(ValueError, match=re.escape(f"expected one of [{allowed}]")):
        data.info("svhn")


def test_info():
    i = data.info("mnist")
    assert (i.input_shape, i.num_classes, i.num_train, i.num_test) == ((28, 28, 1), 10, 60000, 10000)
    assert data.info("cifar100").num_classes == 100
    assert set(data.DATASETS) == {"mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet2012",
                                  "mnist_permuted", "mnist_0to4_vs_5to9"}
    with pytest.raises(Exception):
        i.num_classes = 3  # frozen


# tfds fallback, with a fake tensorflow_datasets so that nothing is downloaded.

def _fake_tfds(monkeypatch, load, prepared=True):
    def builder(name, data_dir=None):
        return types.SimpleNamespace(is_prepared=lambda: prepared,
                                     data_dir=os.path.join(data_dir or "~/tfds", name, "1.0.0"))

    fake = types.SimpleNamespace(
        load=load, builder=builder, ReadConfig=lambda **kw: kw,
        download=types.SimpleNamespace(DownloadConfig=lambda **kw: kw))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)


def _no_download(*args, **kwargs):
    raise AssertionError("tfds.load was called: it would have downloaded")


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "imagenet2012"])
def test_tfds_failure_message_names_both_ways(monkeypatch, name):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)

    def load(*args, **kwargs):
        raise ConnectionError("Failed to reach storage.googleapis.com\nmore lines")

    _fake_tfds(monkeypatch, load)  # prepared, so the network probe is not asked
    with pytest.raises(RuntimeError) as e:
        data.load(name, "test")
    message = str(e.value)
    assert "\n" not in message
    for needle in ("TFLTH_DATA_DIR", "data_dir", "tfds", "TFDS_DATA_DIR", name, "ConnectionError"):
        assert needle in message


def test_cifar_data_dir_is_tfds_data_dir(tmp_path, monkeypatch):
    calls = []

    def load(name, split, **kwargs):
        calls.append((name, split, kwargs["data_dir"]))
        n = 7 if split == "train" else 3
        return np.full((n, 32, 32, 3), 255, np.uint8), np.arange(n, dtype=np.int64)

    _fake_tfds(monkeypatch, load)
    ds = data.load("cifar10", "validation", 4, data_dir=str(tmp_path), validation_size=2)
    x, y = next(iter(ds))
    assert x.shape == (2, 32, 32, 3) and float(tf.reduce_max(x)) == 1.0
    assert y.dtype == tf.int32 and y.numpy().tolist() == [5, 6]
    assert calls == [("cifar10", "train", str(tmp_path))]


def test_imagenet_streams_center_crops(tmp_path, monkeypatch):
    calls = {}

    def load(name, split, **kwargs):
        calls.update(kwargs, split=split)
        images = [np.full((300, 400, 3), 255, np.uint8), np.zeros((250, 240, 3), np.uint8)]
        return tf.data.Dataset.from_generator(
            lambda: iter(zip(images, [3, 7])),
            output_signature=(tf.TensorSpec((None, None, 3), tf.uint8),
                              tf.TensorSpec((), tf.int64)))

    _fake_tfds(monkeypatch, load)
    ds = data.load("imagenet2012", "test", 2, data_dir=str(tmp_path))
    x, y = next(iter(ds))
    assert x.shape == (2, 224, 224, 3) and x.dtype == tf.float32
    assert float(x[0].numpy().min()) == 1.0 and float(x[1].numpy().max()) == 0.0
    assert y.numpy().tolist() == [3, 7]
    assert calls["split"] == "validation"  # the official validation set is the test set
    assert calls["download_and_prepare_kwargs"]["download_config"]["manual_dir"] == str(tmp_path)
    data.load("imagenet2012", "validation", data_dir=str(tmp_path), validation_size=10)
    assert calls["split"] == "train[-10:]"
    with pytest.raises(ValueError, match="load"):
        data.arrays("imagenet2012", "test")


# Without a network: a fast, one-line failure instead of minutes of tfds' retries.

def _offline(monkeypatch):
    """Simulates no network: the probe says no and records the hosts it was asked about."""
    asked = []
    monkeypatch.setattr(loaders, "_host_reachable", lambda host, port: asked.append(host) or False)
    return asked


@pytest.mark.parametrize("name,host", [
    ("fashion_mnist", "fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    ("cifar10", "www.cs.toronto.edu"),
    ("cifar100", "www.cs.toronto.edu"),
])
def test_offline_tfds_fails_fast_naming_both_ways(monkeypatch, name, host):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    asked = _offline(monkeypatch)
    _fake_tfds(monkeypatch, _no_download, prepared=False)
    with pytest.raises(RuntimeError) as e:
        data.load(name, "train")
    message = str(e.value)
    assert asked == [host] and "\n" not in message
    for needle in (name, host, "not prepared", "data_dir=", "--data_dir", "TFLTH_DATA_DIR",
                   "TFDS_DATA_DIR", f"tfds build {name}"):
        assert needle in message


def test_offline_with_real_tfds_fails_within_seconds(tmp_path, monkeypatch):
    """The real tensorflow_datasets, an empty tfds data dir, no network: nothing is downloaded."""
    asked = _offline(monkeypatch)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="TFLTH_DATA_DIR") as e:
        data.arrays("cifar10", "test", data_dir=str(tmp_path))
    assert time.monotonic() - start < 60  # tfds' import included (and a busy machine); its retries took minutes
    assert asked == ["www.cs.toronto.edu"]
    assert str(tmp_path) in str(e.value) and "--data_dir" in str(e.value)


def test_tfds_downloads_only_when_not_prepared_and_online(tmp_path, monkeypatch):
    calls = []

    def load(name, split, **kwargs):
        calls.append(name)
        return np.zeros((3, 32, 32, 3), np.uint8), np.arange(3)

    monkeypatch.setattr(loaders, "_host_reachable", lambda host, port: True)
    _fake_tfds(monkeypatch, load, prepared=False)
    x, _ = data.arrays("cifar100", "test", data_dir=str(tmp_path))
    assert len(x) == 3 and calls == ["cifar100"]


# The real MNIST files, packaged with tflth.

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_packaged_mnist_is_the_default(monkeypatch):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    _fake_tfds(monkeypatch, _no_download)  # MNIST must not come from tfds
    x_all, y_all = data.arrays("mnist", "train", validation_size=0)
    x_tr, y_tr = data.arrays("mnist", "train")
    x_va, y_va = data.arrays("mnist", "validation")
    x_te, y_te = data.arrays("mnist", "test")
    assert (len(x_all), len(x_tr), len(x_va), len(x_te)) == (60_000, 55_000, 5_000, 10_000)
    assert len(y_tr) == 55_000 and len(y_va) == 5_000 and len(y_te) == 10_000
    assert np.bincount(y_all, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert x_tr.shape[1:] == (28, 28, 1) and x_tr.min() == 0 and x_tr.max() == 255
    x, y = next(iter(data.load("mnist", "train", 60)))
    assert x.shape == (60, 28, 28, 1) and 0.0 <= float(tf.reduce_min(x))
    assert float(tf.reduce_max(x)) <= 1.0 and set(y.numpy()) <= set(range(10))


def test_mnist_dir_fixture_is_the_packaged_folder(mnist_dir):
    assert mnist_dir == data.PACKAGED_MNIST
    assert sorted(f for f in os.listdir(mnist_dir) if f.endswith(".gz")) == sorted(
        f + ".gz" for f in FILES)
    assert "CC BY-SA 3.0" in open(os.path.join(mnist_dir, "README.md")).read()


def test_data_dir_and_env_var_win_over_packaged_mnist(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("TFLTH_DATA_DIR", raising=False)
    assert len(data.arrays("mnist", "test")[0]) == 10_000  # cached under the default source
    assert len(data.arrays("mnist", "test", data_dir=tiny)[0]) == N_TEST
    monkeypatch.setenv("TFLTH_DATA_DIR", tiny)
    assert len(data.arrays("mnist", "test")[0]) == N_TEST
    monkeypatch.setenv("TFLTH_DATA_DIR", str(tmp_path / "nowhere"))
    assert len(data.arrays("mnist", "test", data_dir=tiny)[0]) == N_TEST  # argument beats env
    with pytest.raises(ValueError, match="nowhere"):
        data.arrays("mnist", "test")  # a wrong env var fails; no silent fallback
    monkeypatch.setenv("TFLTH_DATA_DIR", "")  # empty counts as unset, as for absl flags
    assert len(data.arrays("mnist", "test")[0]) == 10_000


def test_fashion_mnist_needs_its_own_subfolder(tiny):
    with pytest.raises(ValueError, match="fashion_mnist"):
        data.arrays("fashion_mnist", "train", data_dir=tiny)  # MNIST files at the top: not clothes
