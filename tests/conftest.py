"""Shared pytest fixtures, and a check that no test leaves op determinism on."""

import os

import pytest

from idx_files import learnable_digits, write_mnist
from tflth import data, internals
from tflth.data import loaders

_DETERMINISTIC_OPS = "TF_DETERMINISTIC_OPS"  # TensorFlow's own switch, which the CLIs set for their workers
_BEFORE = pytest.StashKey()


def _op_determinism():
    """(TensorFlow's op determinism on?, TF_DETERMINISTIC_OPS): what a CLI's start-up switches on."""
    return internals.op_determinism_on(), os.environ.get(_DETERMINISTIC_OPS)


def _restore_op_determinism(state):
    enabled, variable = state
    internals.set_op_determinism(enabled)
    if variable is None:
        os.environ.pop(_DETERMINISTIC_OPS, None)
    else:
        os.environ[_DETERMINISTIC_OPS] = variable


def _on(variable):
    return (variable or "").lower() in ("1", "true")  # as TensorFlow reads a boolean variable


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    item.stash[_BEFORE] = _op_determinism()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    """A test that leaves op determinism on (a CLI's `_main` or `tflth.cli.strategy` run in-process
    switches it on for the whole process, as a command line should) errors at teardown, and the
    state is put back so later tests run as they would alone; such a test takes the
    `op_determinism_restored` fixture. A hook, not an autouse fixture, so that it looks once all
    the test's fixtures are torn down: monkeypatch's own undo of a setenv included."""
    try:
        return (yield)
    finally:
        before, after = item.stash.get(_BEFORE, None), _op_determinism()
        if before is not None and after != before:
            _restore_op_determinism(before)
            switched_on = [name for name, was, now in [("op determinism", before[0], after[0]),
                                                       (_DETERMINISTIC_OPS, _on(before[1]), _on(after[1]))]
                           if now and not was]
            if switched_on:
                pytest.fail(f"the test left {' and '.join(switched_on)} on for the tests after it (it was off "
                            "before): take the op_determinism_restored fixture", pytrace=False)


@pytest.fixture
def op_determinism_restored():
    """For a test that runs a CLI in-process: op determinism and TF_DETERMINISTIC_OPS as they
    were before it, once it ends."""
    before = _op_determinism()
    yield
    _restore_op_determinism(before)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """A folder of MNIST-format files small enough to train on in seconds: 240 training and 60
    test images of `learnable_digits`."""
    d = str(tmp_path_factory.mktemp("digits"))
    write_mnist(d, learnable_digits(240, seed=0), learnable_digits(60, seed=1))
    return d


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
