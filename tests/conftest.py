"""Shared pytest fixtures."""

import pytest

from tflth import data
from tflth.data import loaders


@pytest.fixture
def mnist_dir():
    """The folder of real MNIST IDX files packaged with tflth (no download, no env var)."""
    return data.PACKAGED_MNIST


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never touch the network: reaching the probe that tfds' downloads wait for fails
    the test (pytest.fail is not an Exception, so the loader cannot swallow it). Tests that
    simulate a network replace the probe again."""
    def probe(host, port, *args, **kwargs):
        pytest.fail(f"a test tried to reach {host}:{port}; tests must not touch the network")

    monkeypatch.setattr(loaders, "_host_reachable", probe)
