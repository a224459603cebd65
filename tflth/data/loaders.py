"""Image classification datasets as `tf.data` pipelines of `(image, label)`.

Images are float32 in [0, 1] with shape HxWxC, labels int32. Small datasets are
held in memory as uint8 and converted to float after batching (one vectorised
cast per batch instead of one per example). A few tasks are derived from MNIST's
arrays (same files, same split) to check that a conclusion holds on a second task.
"""

import dataclasses
import os
import socket
import threading
import types

import numpy as np
import tensorflow as tf

from tflth import extras
from tflth.data.idx import read_idx

ENV_VAR = "TFLTH_DATA_DIR"
"""The environment variable naming a data folder when no `data_dir=` is given."""
# The original MNIST IDX files ship inside the package (package data, CC BY-SA 3.0; see its
# README.md), so MNIST needs no network: its default source when no data_dir is given.
PACKAGED_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist")
"""The folder of the MNIST IDX files packaged with tflth."""
SPLITS = ("train", "validation", "test")
"""The splits `load` and `arrays` take (validation: the last examples of the training set)."""
# The seed of permuted MNIST's pixel order. It feeds numpy's legacy RandomState, whose
# streams NumPy keeps frozen across versions and platforms (NEP 19; default_rng's are not
# promised), so the order is the same in every process and on every machine.
PERMUTATION_SEED = 0
"""The seed of permuted MNIST's pixel order."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset. `validation_size` is the default hold-out."""

    input_shape: tuple
    num_classes: int
    num_train: int  # size of the original training set, before the hold-out
    num_test: int
    validation_size: int


DATASETS = types.MappingProxyType({
    # 5,000 held out of MNIST's 60,000 gives the lottery-ticket paper's
    # 55,000 / 5,000 / 10,000 split.
    "mnist": DatasetInfo((28, 28, 1), 10, 60_000, 10_000, 5_000),
    "fashion_mnist": DatasetInfo((28, 28, 1), 10, 60_000, 10_000, 5_000),
    "cifar10": DatasetInfo((32, 32, 3), 10, 50_000, 10_000, 5_000),
    "cifar100": DatasetInfo((32, 32, 3), 100, 50_000, 10_000, 5_000),
    # ImageNet's official validation set serves as the test set, as in the papers.
    "imagenet2012": DatasetInfo((224, 224, 3), 1000, 1_281_167, 50_000, 0),
    # MNIST with one fixed shuffle of the 784 pixel positions: no spatial structure left.
    "mnist_permuted": DatasetInfo((28, 28, 1), 10, 60_000, 10_000, 5_000),
    # MNIST's images, label 0 for the digits 0-4 and 1 for 5-9.
    "mnist_0to4_vs_5to9": DatasetInfo((28, 28, 1), 2, 60_000, 10_000, 5_000),
})
"""The datasets tflth knows, by name: their `DatasetInfo`."""


def _permute_pixels(x, y):
    order = np.random.RandomState(PERMUTATION_SEED).permutation(28 * 28)
    return x.reshape(len(x), 28 * 28)[:, order].reshape(x.shape), y


def _low_vs_high_digits(x, y):
    return x, (y >= 5).astype(np.int32)


# Derived task -> (the dataset it transforms, a per-example transform of (x, y)). Applied to
# whole original splits, so the validation split is the same examples as the source's.
_DERIVED = {
    "mnist_permuted": ("mnist", _permute_pixels),
    "mnist_0to4_vs_5to9": ("mnist", _low_vs_high_digits),
}

_IDX_NAMES = ("mnist", "fashion_mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# A full-buffer shuffle of decoded ImageNet would not fit in memory.
_IMAGENET_SHUFFLE_BUFFER = 2_000
# Where tfds downloads each dataset from when it is not prepared yet (its builders' URLs).
_DOWNLOAD_HOSTS = {
    "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
    "cifar10": ("www.cs.toronto.edu", 443),
    "cifar100": ("www.cs.toronto.edu", 443),
}
_TFDS_HOST = ("storage.googleapis.com", 443)  # tfds' own mirror, for any other dataset
_PROBE_TIMEOUT_S = 3.0
# (name, data_dir, "train" | "test") -> (x_uint8, y_int32), read-only. data_dir None is the
# default source (packaged MNIST, else tfds), so it never shares an entry with a folder.
_CACHE = {}


def info(name):
    """Returns the `DatasetInfo` of dataset `name`."""
    _check_name(name)
    return DATASETS[name]


def arrays(name, split="train", *, data_dir=None, validation_size=None):
    """Returns `(x, y)` numpy arrays of a split: x uint8 NxHxWxC, y int32 N.

    The arrays are cached per process and read-only; copy before editing.
    `data_dir` and `validation_size` are as in `load`. Not for imagenet2012.
    """
    _check_name(name)
    _check_split(split)
    if name == "imagenet2012":
        raise ValueError("name='imagenet2012' is too large for arrays(); use load()")
    held_out = _validation_size(name, split, validation_size)
    root = _resolve_data_dir(data_dir)
    if split == "test":
        return _base_arrays(name, "test", root)
    x, y = _base_arrays(name, "train", root)
    _check_held_out(held_out, len(x))
    if split == "validation":
        return x[-held_out:], y[-held_out:]
    end = len(x) - held_out  # not x[:-held_out]: that is empty for 0
    return x[:end], y[:end]


def load(name, split="train", batch_size=60, *, data_dir=None, shuffle=None, seed=0,
         validation_size=None, repeat=False, drop_remainder=False):
    """Returns a batched, prefetched `tf.data.Dataset` of `(image, label)`.

    Args:
      name: one of `DATASETS`.
      split: "train", "validation" (the LAST `validation_size` examples of the
        original training set) or "test".
      batch_size: examples per batch.
      data_dir: where the data is; default: the TFLTH_DATA_DIR environment
        variable. For mnist/fashion_mnist a folder with the four IDX files
        (optionally .gz), or with a `<name>/` subfolder holding them; the tasks
        derived from MNIST (mnist_permuted, ...) read MNIST's. For
        cifar10/cifar100 the tfds data_dir. For imagenet2012 both the tfds
        data_dir and the tfds manual_dir (holding the downloaded ImageNet tars).
        Without one, MNIST is read from the copy packaged with tflth (no
        network needed) and tensorflow_datasets provides the other datasets.
      shuffle: default True for "train" only. The order depends on `seed` alone
        (not on TensorFlow's global seed) and changes every epoch.
      seed: shuffle seed.
      validation_size: examples held out of training; default
        `info(name).validation_size`; 0 means "train" is the whole training set.
      repeat: repeat forever.
      drop_remainder: drop the last, smaller batch.
    """
    _check_name(name)
    _check_split(split)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if shuffle is None:
        shuffle = split == "train"
    if name == "imagenet2012":
        held_out = _validation_size(name, split, validation_size)
        ds = _imagenet(split, _resolve_data_dir(data_dir), held_out, shuffle, seed)
        ds, to_batch = (ds.repeat() if repeat else ds), _to_float
    else:
        x, y = arrays(name, split, data_dir=data_dir, validation_size=validation_size)
        images, labels = tf.constant(x), tf.constant(y)
        ds = _indices(len(x), seed if shuffle else None, repeat)

        def to_batch(index):  # gathers a whole batch at once: no per-example work
            return _to_float(tf.gather(images, index), tf.gather(labels, index))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _indices(n, seed, repeat):
    """Example indices; with a seed, a fresh permutation per pass that depends on the seed
    alone (a stateless shuffle: tf.data's shuffle also depends on the global TF seed).
    Iterating a finite dataset again starts the next pass, as Keras does each epoch."""
    if seed is None:
        ds = tf.data.Dataset.range(n)
        return ds.repeat() if repeat else ds

    def permutation(epoch):
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.index_shuffle(tf.range(n, dtype=tf.int64), key, n - 1)
        return tf.data.Dataset.from_tensor_slices(order)

    if repeat:
        return tf.data.Dataset.counter().flat_map(permutation)
    passes = tf.Variable(-1, dtype=tf.int64, trainable=False)
    ds = tf.data.Dataset.range(1).map(lambda _: passes.assign_add(1)).flat_map(permutation)
    # flat_map hides the length; Keras needs it to end an epoch without an "ran out of data" warning.
    return ds.apply(tf.data.experimental.assert_cardinality(n))


def _to_float(x, y):
    return tf.cast(x, tf.float32) / 255.0, y


def _check_name(name):
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"Unknown dataset name={name!r}; expected one of {sorted(DATASETS)}")


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"Unknown split={split!r}; expected one of {list(SPLITS)}")


def _validation_size(name, split, validation_size):
    held_out = DATASETS[name].validation_size if validation_size is None else validation_size
    if isinstance(held_out, bool) or not isinstance(held_out, (int, np.integer)) or held_out < 0:
        raise ValueError(f"validation_size must be an integer >= 0, got {validation_size!r}")
    if split == "validation" and held_out == 0:
        raise ValueError(f"split='validation' needs validation_size > 0 (got 0) for {name!r}")
    return int(held_out)


def _check_held_out(held_out, num_train):
    if held_out >= num_train:
        raise ValueError(f"validation_size={held_out} must be smaller than the "
                         f"{num_train} training examples")


def _resolve_data_dir(data_dir):
    # Empty string counts as unset: absl string flags default to "".
    data_dir = data_dir or os.environ.get(ENV_VAR) or None
    return None if data_dir is None else os.path.abspath(os.path.expanduser(data_dir))


def _base_arrays(name, base_split, root):
    key = (name, root, base_split)
    if key not in _CACHE:
        if name in _DERIVED:
            source, transform = _DERIVED[name]
            x, y = transform(*_base_arrays(source, base_split, root))
        elif root is not None and name in _IDX_NAMES:
            x, y = _read_idx_split(name, root, base_split)
        elif name == "mnist":
            x, y = _read_idx_split(name, PACKAGED_MNIST, base_split)
        else:
            x, y = _tfds_arrays(name, base_split, root)
        # Read-only, because every caller shares the cached arrays.
        x.setflags(write=False)
        y.setflags(write=False)
        _CACHE[key] = (x, y)
    return _CACHE[key]


def _read_idx_split(name, root, base_split):
    sub = os.path.join(root, name)
    # Fashion-MNIST's files have MNIST's names: only MNIST may sit at the top of the folder,
    # so a folder of digits is never read as clothes.
    directory = sub if os.path.isdir(sub) or name != "mnist" else root
    if not os.path.isdir(directory):
        raise ValueError(f"{name}: data directory {directory!r} does not exist")
    paths, missing = [], []
    for base in _IDX_FILES[base_split]:
        found = [p for p in (base, base + ".gz") if os.path.isfile(os.path.join(directory, p))]
        paths.append(os.path.join(directory, found[0]) if found else None)
        if not found:
            missing.append(base)
    if missing:
        raise ValueError(f"{name}: data directory {directory!r} lacks {missing} "
                         "(each file may also end in .gz)")
    images_path, labels_path = paths
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"IDX file {images_path!r}: expected uint8 images of rank 3, "
                         f"got {x.dtype} of shape {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8 or len(y) != len(x):
        raise ValueError(f"IDX file {labels_path!r}: expected {len(x)} uint8 labels, "
                         f"got {y.dtype} of shape {y.shape}")
    num_classes = DATASETS[name].num_classes
    if len(y) and y.max() >= num_classes:
        raise ValueError(f"IDX file {labels_path!r}: label {y.max()} >= {num_classes} classes")
    return x[..., np.newaxis], y.astype(np.int32)


def _tfds_arrays(name, split, root):
    tfds = extras.need("tensorflow_datasets", f"dataset {name!r}")  # slow to import: only when needed
    try:
        builder = tfds.builder(name, data_dir=root)
        prepared = builder.is_prepared()
    except Exception as e:  # noqa: BLE001 - anything tfds raises means "no data"
        raise RuntimeError(_unavailable(name, root, e)) from e
    # Without a network tfds retries its download for minutes: when it would download,
    # look at the host first, briefly.
    host, port = _DOWNLOAD_HOSTS.get(name, _TFDS_HOST)
    if not prepared and not _host_reachable(host, port):
        raise RuntimeError(_unavailable(
            name, root, f"it is not prepared in {builder.data_dir!r} and tfds cannot "
                        f"download it: {host} is unreachable (no network?)"))
    try:
        x, y = tfds.load(name, split=split, as_supervised=True, batch_size=-1, data_dir=root)
        return np.asarray(x, np.uint8), np.asarray(y, np.int32)
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(_unavailable(name, root, e)) from e


def _host_reachable(host, port, timeout=_PROBE_TIMEOUT_S):
    """True if a TCP connection to `host` opens within `timeout` seconds.

    The socket timeout does not cover the DNS lookup, which can hang for long without a
    network, so the attempt runs in a daemon thread that is abandoned when late.
    Tests replace this function: they never touch the network.
    """
    opened = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)


def _unavailable(name, root, why):
    """One line: why dataset `name` is missing (an exception or a phrase) and how to provide it."""
    if isinstance(why, BaseException):
        detail = (str(why).strip().splitlines() or [""])[0][:200]
        where = (f"tfds data_dir={root!r} did not hold it and tfds could not prepare it"
                 if root else "no data_dir given and tensorflow_datasets could not provide it")
        why = f"{where} ({type(why).__name__}: {detail})"
    folder = ("a folder with the four MNIST-format IDX files" if name in _IDX_NAMES
              else "a tfds data dir holding it")
    return (f"Cannot load dataset {name!r}: {why}. To provide it, pass data_dir= "
            f"(flag --data_dir) or set {ENV_VAR} to {folder}, or prepare it under "
            f"TFDS_DATA_DIR with `tfds build {name}` (needs network once).")


def _imagenet(split, root, held_out, shuffle, seed):
    """Streams imagenet2012 from tfds; `root` is both its data_dir and manual_dir."""
    if split == "test":
        tfds_split = "validation"
    elif split == "validation":
        tfds_split = f"train[-{held_out}:]"
    else:
        tfds_split = f"train[:-{held_out}]" if held_out else "train"
    tfds = extras.need("tensorflow_datasets", "imagenet2012")
    try:
        ds = tfds.load(
            "imagenet2012", split=tfds_split, as_supervised=True, data_dir=root,
            shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed),
            download_and_prepare_kwargs={
                "download_config": tfds.download.DownloadConfig(manual_dir=root)})
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(_unavailable("imagenet2012", root, e)) from e
    ds = ds.map(center_crop, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(_IMAGENET_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return ds


def center_crop(image, label, size=224, resize=256):
    """Resizes the shorter side to `resize`, crops the central `size`x`size`; uint8."""
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    new_hw = tf.cast(tf.round(hw * (resize / tf.reduce_min(hw))), tf.int32)
    image = tf.image.resize(image, new_hw)
    image = tf.image.resize_with_crop_or_pad(image, size, size)
    # Back to uint8 so the shuffle buffer holds 4x less memory.
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    return image, tf.cast(label, tf.int32)
