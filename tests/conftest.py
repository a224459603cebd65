"""Shared pytest fixtures."""

import os

import pytest


@pytest.fixture
def mnist_dir():
    """The real MNIST IDX folder from TFLTH_DATA_DIR.

    Skips when the variable is unset, except on CI (CI=true), where a missing
    data set must fail loudly instead of silently skipping the real-data tests.
    """
    path = os.environ.get("TFLTH_DATA_DIR")
    if not path:
        message = ("TFLTH_DATA_DIR is not set; point it at a folder with the four MNIST "
                   "IDX files (e.g. ../shared/data/mnist)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required on CI)")
        pytest.skip(message)
    if not os.path.isdir(path):
        pytest.fail(f"TFLTH_DATA_DIR={path!r} is not a directory")
    return path
