"""Datasets: `load(name, split, batch_size)` returns a `tf.data.Dataset` of (image, label)."""

from tflth.data.idx import read_idx
from tflth.data.loaders import (DATASETS, ENV_VAR, PACKAGED_MNIST, PERMUTATION_SEED, SPLITS,
                                 DatasetInfo, arrays, info, load)

__all__ = ["DatasetInfo", "arrays", "info", "load", "read_idx"]
