"""Keras' and TensorFlow's private API is reached in tflth.internals alone, importing tflth
changes nothing process-wide, and an unchecked Keras stops the import with one line."""
import ast
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tflth
from tflth import internals, pruning

PACKAGE = os.path.dirname(tflth.__file__)
PRIVATE_MODULES = ("keras.src", "tensorflow.python")


def _sources():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    yield path, ast.parse(f.read())


def _own_private_names(trees):
    """The _names tflth defines itself (functions, classes, attributes and variables it assigns)."""
    own = {"_exit"}  # os._exit: public, despite its name
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
    return own


def _private_uses(tree, own):
    """(line, what) for each private Keras/TensorFlow module imported, attribute of theirs
    reached (a _name tflth does not define), or class renamed (which steers Keras' saving)."""
    for node in ast.walk(tree):
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                   [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for module in modules:
            if module.startswith(PRIVATE_MODULES):
                yield node.lineno, f"import {module}"
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") and not node.attr.endswith("__") and node.attr not in own:
                yield node.lineno, f".{node.attr}"
            if node.attr == "__name__" and isinstance(node.ctx, ast.Store):
                yield node.lineno, ".__name__ = "


def test_private_api_is_reached_in_tflth_internals_alone():
    sources = list(_sources())
    own = _own_private_names(tree for path, tree in sources if path != internals.__file__)
    found = [f"{os.path.relpath(path, PACKAGE)}:{line}: {what}" for path, tree in sources
             if path != internals.__file__ for line, what in _private_uses(tree, own)]
    assert not found, "private Keras/TensorFlow API outside tflth/internals.py:\n" + "\n".join(found)
    in_internals = {what for path, tree in sources if path == internals.__file__ for _, what in _private_uses(tree, own)}
    assert {"._flatten_layers", "._kernel", "import keras.src.backend.tensorflow", ".__name__ = "} <= in_internals


STATE = r"""
import json, logging, os, random, sys, warnings
import numpy as np, tensorflow as tf, keras
from keras.src.backend.common import global_state
from keras.src.backend.tensorflow import trainer
from tensorflow.python.framework import config

def state():
    return {"python random": repr(random.getstate()), "numpy random": repr(np.random.get_state()),
            "keras seed": repr(global_state.get_global_attribute("global_random_seed")),
            "keras seed generator": repr(global_state.get_global_attribute("global_seed_generator")),
            "environment": dict(os.environ), "op determinism": config.is_op_determinism_enabled(),
            "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                        tf.config.threading.get_inter_op_parallelism_threads()],
            "keras config": [keras.config.floatx(), keras.config.dtype_policy().name,
                             keras.config.image_data_format(), keras.config.epsilon()],
            "trainer": [id(trainer.reduce_per_replica), id(trainer.TensorFlowTrainer._maybe_symbolic_build)],
            "streams": [id(sys.stdout), id(sys.stderr)], "warnings": repr(warnings.filters),
            "loggers": [logging.getLogger(name).level for name in ("", "tensorflow", "absl", "keras")]}

before = state()
import pkgutil, importlib, tflth
for module in pkgutil.walk_packages(tflth.__path__, "tflth."):
    if not module.name.endswith("__main__"):  # `python -m` entry points run when imported
        importlib.import_module(module.name)
after = state()
print(json.dumps({key: [before[key], after[key]] for key in before if before[key] != after[key]}))
"""


def test_importing_tflth_and_every_module_changes_nothing_process_wide():
    """Seeds, generators, environment, op determinism, threads, Keras' configuration, Keras'
    trainer, the streams, warning filters and loggers are as they were before the import."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", STATE], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    changed = json.loads(out.stdout.strip().splitlines()[-1])
    assert changed == {}, f"importing tflth changed: {sorted(changed)}"


def test_a_keras_outside_the_checked_versions_stops_the_import_with_one_line(monkeypatch):
    internals.check_versions()  # the installed ones are checked
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(ImportError, match=r"^tflth supports keras 3\.15\.x; this environment has keras 3\.99\.0 "
                                          r"\(pip install -e \. installs a supported one\)$"):
        internals.check_versions()


def test_the_reinit_control_changes_no_generator_and_draws_as_before():
    """fresh_weights gives what seeding every generator (keras.utils.set_random_seed, as it did
    before) gave, and leaves Python's and NumPy's generators where they were."""
    model = tflth.models.lenet_300_100()
    random_state, numpy_state = __import__("random").getstate(), np.random.get_state()
    fresh = pruning.fresh_weights(model, seed=7)
    assert __import__("random").getstate() == random_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    np.testing.assert_array_equal(fresh[0], pruning.fresh_weights(model, seed=7)[0])
    assert not np.array_equal(fresh[0], pruning.fresh_weights(model, seed=8)[0])
    keras.utils.set_random_seed(7)  # the old way, process-wide
    for new, old in zip(fresh, pruning.rewind.snapshot_weights(keras.models.clone_model(model))):
        np.testing.assert_array_equal(new, old)
