"""Writing MNIST-format IDX files for tests (no downloads)."""
import gzip
import os

import numpy as np


def idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, payload, gz):
    if gz:
        path, payload = path + ".gz", gzip.compress(payload)
    with open(path, "wb") as f:
        f.write(payload)
    return path


def write_mnist(directory, train, test, gz=True):
    """Writes (images uint8 Nx28x28, labels uint8 N) pairs as the four MNIST files."""
    os.makedirs(directory, exist_ok=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        write(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), idx_bytes(images), gz)
        write(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), idx_bytes(labels), gz)


def learnable_digits(n, seed):
    """Images whose class is a bright 7x7 square at one of ten places: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 4 + 10 * row:11 + 10 * row, 1 + 5 * col:8 + 5 * col] = 255
    return images, labels
