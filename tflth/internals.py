"""Every use of Keras' and TensorFlow's private API in tflth, and the versions it was checked against.

Keras 3 and TensorFlow offer no public way to do the few things below, so tflth reaches inside
them here and nowhere else (a test fails on a private access anywhere else in the package).
Each function says what it touches and why. Importing tflth checks the installed versions
against the ones these were read and tested with (`check_versions`): outside that range it
stops with one line, rather than failing later in some corner. Moving to a new Keras or
TensorFlow release: check each function below against it, then widen the range.
"""
import contextlib
import random

import keras
import numpy as np
import tensorflow as tf

KERAS_VERSIONS = ("3.15",)  # major.minor releases every function below was checked against
TENSORFLOW_VERSIONS = ("2.21",)
KERAS_TUNER_VERSIONS = ("1.4",)  # tuner_checkpoint_class; checked when tflth.tuning is imported


def _minor(version):
    return ".".join(version.split(".")[:2])


def check_versions():
    """ImportError (one line) when the installed Keras or TensorFlow is outside the checked range,
    or Keras runs on another backend than TensorFlow."""
    _check("pip install tflth", ("keras", keras.__version__, KERAS_VERSIONS),
           ("tensorflow", tf.__version__, TENSORFLOW_VERSIONS))
    if keras.backend.backend() != "tensorflow":
        raise ImportError(f"tflth runs on Keras' TensorFlow backend; this process has Keras' "
                          f"{keras.backend.backend()} backend (set KERAS_BACKEND=tensorflow, or \"backend\" in "
                          "~/.keras/keras.json)")


def check_keras_tuner_version():
    """check_versions for keras-tuner (tflth.tuning)."""
    import keras_tuner
    _check("pip install 'tflth[tuning]'", ("keras-tuner", keras_tuner.__version__, KERAS_TUNER_VERSIONS))


def _check(install, *installed):
    for name, version, checked in installed:
        if _minor(version) not in checked:
            raise ImportError(f"tflth supports {name} {', '.join(v + '.x' for v in checked)}; this environment "
                              f"has {name} {version} ({install} installs a supported one; in a clone, "
                              "pip install -e .)")


def all_layers(model):
    """Every layer inside `model`, nested models and layers held by layers included, in order."""
    # Keras has no public recursive walk over a model's layers (Model.layers lists the top level
    # only); Layer._flatten_layers is the walk Keras itself uses for weights and saving.
    return list(model._flatten_layers(include_self=False, recursive=True))


def sublayers(layer):
    """The layers `layer` holds directly (its attributes, lists of them), in the order of its weights."""
    # Layer._flatten_layers is Keras' own walk (see all_layers); no public API lists direct children.
    return list(layer._flatten_layers(include_self=False, recursive=False))


def replace_sublayer(parent, old, new):
    """Puts `new` wherever the built layer `parent` holds `old` (an attribute, or an entry of a list,
    dict or tuple in one, nested or not), in `old`'s place among its sublayers, so that weights
    keep their order."""
    # Keras has no public way to swap a sublayer of a built layer: its tracker refuses new state
    # once built, and its sublayer list (which orders weights and saved files) is private.
    parent._tracker.replace_tracked_value("layers", old, new)

    def swapped(value):
        if value is old:
            return new
        if isinstance(value, list):
            items = [swapped(item) for item in value]
            if any(a is not b for a, b in zip(items, value)):
                value[:] = items
        elif isinstance(value, dict):
            for key, item in list(value.items()):
                if swapped(item) is not item:
                    value[key] = swapped(item)
        elif isinstance(value, tuple):  # TensorFlow's tracking wraps a layer's tuples in a proxy of one
            items = tuple(swapped(item) for item in value)
            return items if any(a is not b for a, b in zip(items, value)) else value
        return value

    for name, value in list(vars(parent).items()):
        if name != "_tracker" and isinstance(value, (keras.layers.Layer, list, dict, tuple)):
            changed = swapped(value)
            if changed is not value:
                setattr(parent, name, changed)  # already tracked: Keras' __setattr__ adds nothing


def is_graph_model(model):
    """Whether `model` is a Functional or Sequential model, one Keras can copy layer by layer."""
    # keras.Model(inputs, outputs) returns a Functional, which Keras does not export by that name.
    from keras.src.models.functional import Functional
    return isinstance(model, (Functional, keras.Sequential))


def kernel_variable(layer):
    """The variable behind a built prunable layer's kernel (an Embedding's: its embeddings)."""
    # Dense, Conv and EinsumDense's `kernel` (Embedding's `embeddings`) is a property that, with
    # LoRA or quantization, returns a computed tensor; the masked families set the variable's
    # constraint and assign to it, so they need `_kernel` (`_embeddings`). DepthwiseConv2D and the
    # transposed convolutions keep theirs in a plain `kernel` attribute.
    if "_kernel" in vars(layer):
        return layer._kernel
    if "_embeddings" in vars(layer):
        return layer._embeddings
    return layer.kernel


def optimizer_variables(optimizer):
    """The variables an optimizer was built for, in the order `apply` takes gradients."""
    # Optimizer.apply(grads) without variables uses this list; no public attribute exposes it.
    return optimizer._trainable_variables


def call_sites(layer):
    """[(number of input tensors) per call of `layer` in a functional graph]."""
    # Functional models keep each layer's calls as its inbound nodes; no public API lists them.
    return [len(node.input_tensors) for node in layer._inbound_nodes]


@contextlib.contextmanager
def seeded(seed):
    """Inside: Python's, NumPy's and Keras' global generators seeded with `seed` as
    keras.utils.set_random_seed seeds them, so Keras draws what it would after that call; after:
    all three as they were. TensorFlow's global seed is left alone (restoring it is not possible
    with TensorFlow's API; nothing Keras builds draws from it)."""
    # Keras keeps its global seed and generator in its private global state; set_random_seed
    # can set them but nothing public reads them back.
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils
    names = (rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR)
    saved = random.getstate(), np.random.get_state(), [global_state.get_global_attribute(n) for n in names]
    random.seed(seed)
    np.random.seed(seed)
    global_state.set_global_attribute(names[0], seed)
    global_state.set_global_attribute(names[1], None)  # made again from the seed when first used
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        for name, value in zip(names, saved[2]):
            global_state.set_global_attribute(name, value)


def op_determinism_on():
    """Whether TensorFlow's op determinism is on in this process."""
    # The public API can switch op determinism on (tf.config.experimental.enable_op_determinism)
    # but not read it; Keras' trainer reads it from the same module.
    from tensorflow.python.framework import config
    return config.is_op_determinism_enabled()


def set_op_determinism(enabled):
    """Switches TensorFlow's op determinism on or off (the public API can only switch it on)."""
    from tensorflow.python.framework import config
    (config.enable_op_determinism if enabled else config.disable_op_determinism)()


def xla_compiling():
    """Whether the function being traced will be compiled by XLA (`jit_compile=True`)."""
    # No public call tells a traced op that XLA will compile it; tf.function(jit_compile=True)
    # marks its graph with this context.
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util
    return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph())


def filed_as(keras_cls):
    """Class decorator: Keras files a model's layers under their snake-cased class
    name (`type(layer).__name__`, in `saving_lib._save_container_state`), so a class
    named MaskedDense would be filed under `masked_dense` and neither a plain file nor
    a masked one would load into the other model. Borrowing Keras' `__name__` files
    both under `dense`. The import path, `__qualname__`, registered name and default
    layer names stay MaskedDense's; summaries and reprs show Keras' class name. So does
    the error of a process that loads a `.keras` file without importing tflth: "Could not
    locate class 'Dense'" (its config names `tflth>MaskedDense`). Keras imports no module
    outside its own packages to find a class, so nothing of tflth can run there to say more."""
    def rename(cls):
        cls.__name__ = keras_cls.__name__
        return cls
    return rename


def tuner_checkpoint_class():
    """keras-tuner's callback that saves the best epoch of a trial (SaveBestEpoch)."""
    # keras-tuner adds it to every trial's callbacks from a private module and exports it nowhere;
    # tflth.tuning calls it once on the final model instead (tflth/tuning/hypermodel.py says why).
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch
    return SaveBestEpoch


def patch_multi_worker_trainer():
    """Keras 3.15's TF trainer fails under MultiWorkerMirroredStrategy in two places, for every
    model; `tflth.distribute` patches both, once, when such a strategy is made:
    - before fit and evaluate, `_maybe_symbolic_build` reduces the first (x, y) batch over the
      replicas just to learn its shapes, and a nested structure cannot be reduced: it gets this
      worker's own first replica batch instead (same shapes, no communication);
    - `reduce_per_replica(..., "auto")` reduces each step's scalar logs with
      `strategy.reduce("MEAN", v, axis=0)`, which needs rank >= 1: scalars get axis=None, the
      mean over the replicas, which is what Keras means on every other strategy.
    """
    from keras.src.backend.tensorflow import trainer as keras_trainer
    if getattr(keras_trainer, "_tflth_multi_worker_fix", False):
        return
    multi_worker = keras_trainer._collective_all_reduce_multi_worker
    keras_reduce, keras_build = keras_trainer.reduce_per_replica, keras_trainer.TensorFlowTrainer._maybe_symbolic_build

    def first_local(strategy, value):
        return (strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues) else value)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            # Plain tensors too (one replica per worker): each is this worker's part of the mean.
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if first_local(strategy, v).shape.rank == 0 else 0)
                if isinstance(v, (tf.distribute.DistributedValues, tf.Tensor)) else v, values)
        return keras_reduce(values, strategy, reduction)

    def maybe_symbolic_build(model, iterator=None, data_batch=None):
        strategy = model.distribute_strategy
        if iterator is not None and data_batch is None and multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: first_local(strategy, v), next(batches))
                break
            iterator = None
        return keras_build(model, iterator=iterator, data_batch=data_batch)

    keras_trainer.reduce_per_replica = reduce_per_replica
    keras_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    keras_trainer._tflth_multi_worker_fix = True
