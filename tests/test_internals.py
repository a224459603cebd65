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
PRIVATE_MODULES = ("keras.src", "tensorflow.python", "keras_tuner.src")


def _sources():
    """(path, syntax tree) of every module of tflth and of tools/."""
    for folder, _, files in [*os.walk(PACKAGE), *os.walk(os.path.join(os.path.dirname(PACKAGE), "tools"))]:
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    yield path, ast.parse(f.read())


def _own_private_names(trees):
    """The _names tflth defines itself (functions, classes, attributes and variables it assigns,
    hidden command-line flags)."""
    own = {"_exit"}  # os._exit: public, despite its name
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Constant) and str(node.value).startswith("--_"):  # an argparse dest
                own.add(node.value[2:])
    return own


def _private_uses(tree, own):
    """(line, what) for each private Keras/TensorFlow module imported, attribute of theirs
    reached (a _name tflth does not define), or class renamed (which steers Keras' saving)."""
    for node in ast.walk(tree):
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                   [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
        for module in modules:
            if module.startswith(PRIVATE_MODULES):
                yield node.lineno, f"import {module}"
        name = (node.args[1].value if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and
                node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1 and
                isinstance(node.args[1], ast.Constant) else None)
        if isinstance(name, str) and name.startswith("_") and not name.endswith("__") and name not in own:
            yield node.lineno, f'{node.func.id}(..., "{name}")'
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                f"{node.value.id}.{node.attr}" in ("keras.src", "tf.python", "tensorflow.python"):
            yield node.lineno, f"{node.value.id}.{node.attr}"
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") and not node.attr.endswith("__") and node.attr not in own:
                yield node.lineno, f".{node.attr}"
            if node.attr == "__name__" and isinstance(node.ctx, ast.Store):
                yield node.lineno, ".__name__ = "


def test_private_api_is_reached_in_tflth_internals_alone():
    sources = list(_sources())
    own = _own_private_names(tree for path, tree in sources if path != internals.__file__)
    found = [f"{os.path.relpath(path, os.path.dirname(PACKAGE))}:{line}: {what}" for path, tree in sources
             if path != internals.__file__ for line, what in _private_uses(tree, own)]
    assert not found, "private Keras/TensorFlow API outside tflth/internals.py:\n" + "\n".join(found)
    snippet = ast.parse("from keras import src\nimport tensorflow.python as t\ngetattr(layer, '_kernel')\n"
                        "keras.src.backend\nlayer._flatten_layers()\nA.__name__ = 'B'\n")
    assert sorted(line for line, _ in _private_uses(snippet, own)) == [1, 2, 3, 4, 5, 6]
    in_internals = {what for path, tree in sources if path == internals.__file__ for _, what in _private_uses(tree, own)}
    assert {"._flatten_layers", "._kernel", "._tracker", "import keras.src.backend.tensorflow.trainer",
            ".__name__ = "} <= in_internals


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
                                          r"\(pip install tflth installs a supported one; in a clone, "
                                          r"pip install -e \.\)$"):
        internals.check_versions()


def test_another_backend_or_an_unchecked_keras_tuner_stops_with_one_line(monkeypatch):
    import keras_tuner
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match=r"^tflth runs on Keras' TensorFlow backend; this process has Keras' jax "
                                          r"backend \(set KERAS_BACKEND=tensorflow, or \"backend\" in "
                                          r"~/\.keras/keras\.json\)$"):
        internals.check_versions()
    internals.check_keras_tuner_version()
    monkeypatch.setattr(keras_tuner, "__version__", "1.5.0")
    with pytest.raises(ImportError, match=r"^tflth supports keras-tuner 1\.4\.x; this environment has keras-tuner "
                                          r"1\.5\.0 \(pip install 'tflth\[tuning\]' installs a supported one"):
        internals.check_keras_tuner_version()


def test_the_reinit_control_changes_no_generator_and_draws_as_before():
    """fresh_weights gives what seeding every generator (keras.utils.set_random_seed, as it did
    before) gave, for tflth's layers and a layer whose initializer draws from Keras' global
    generator, and leaves Python's, NumPy's and Keras' generators where they were."""
    import random

    from keras.src.backend.common import global_state

    @keras.saving.register_keras_serializable(package="test_internals")
    class GlobalDraw(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return keras.random.normal(shape) + np.random.normal()  # Keras' and NumPy's global generators

    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, kernel_initializer=GlobalDraw())(
        tflth.models.lenet_300_100()(inputs)))
    generator = keras.random.SeedGenerator(0)  # some state of the caller's
    keras.random.normal((2,))  # Keras' global generator exists and has drawn
    before = (random.getstate(), np.random.get_state(), global_state.get_global_attribute("global_seed_generator"),
              global_state.get_global_attribute("global_random_seed"), np.asarray(generator.state))
    fresh = pruning.fresh_weights(model, seed=7)
    after = (random.getstate(), np.random.get_state(), global_state.get_global_attribute("global_seed_generator"),
             global_state.get_global_attribute("global_random_seed"), np.asarray(generator.state))
    assert before[0] == after[0] and all(np.array_equal(a, b) for a, b in zip(before[1], after[1]))
    assert before[2] is after[2] and before[3] == after[3] and np.array_equal(before[4], after[4])
    np.testing.assert_array_equal(fresh[-2], pruning.fresh_weights(model, seed=7)[-2])
    assert not np.array_equal(fresh[0], pruning.fresh_weights(model, seed=8)[0])
    with pytest.raises(ValueError, match=r"^seed=None: must be an integer$"):
        pruning.fresh_weights(model, seed=None)
    keras.utils.set_random_seed(7)  # the old way, process-wide
    for new, old in zip(fresh, pruning.rewind.snapshot_weights(keras.models.clone_model(model))):
        np.testing.assert_array_equal(new, old)
