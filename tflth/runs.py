"""What every recipe's runner shares: the data a run trains on, models built from a seed,
and run folders named by a hash of the hyperparameters (checked on resume).

`hparams` is any frozen hparams object with `.dataset` (DatasetHparams), `.sections`,
`to_dict()` and `from_dict()` (the lottery's and the sparse-training runner's).
"""
import contextlib
import fcntl
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import time

import keras
import numpy as np
import tensorflow as tf

from tflth import data as tdata
from tflth import engine, io, models, schema
from tflth.failures import DamagedFile, RunBusy
from tflth.hparams import digest, to_flagfile
from tflth.layers.family import get_family


def load_data(hparams, data_dir=None):
    """The arrays and evaluation streams a run needs, `tflth.engine.train`'s `data`: {"x", "y": the
    training images and labels; "validation", "test": evaluation streams}. Raises
    ValueError/RuntimeError before anything is written."""
    name, held_out = hparams.dataset.dataset, hparams.dataset.validation_size
    x, y = tdata.arrays(name, "train", data_dir=data_dir, validation_size=held_out)
    return {"x": x, "y": y,
            "validation": engine.eval_stream(*tdata.arrays(name, "validation", data_dir=data_dir,
                                                           validation_size=held_out)),
            "test": engine.eval_stream(*tdata.arrays(name, "test", data_dir=data_dir))}


def train_size(hparams):
    """The number of training examples (what penalties scaled per example divide by)."""
    return tdata.info(hparams.dataset.dataset).num_train - hparams.dataset.validation_size


def build_model(hparams, model, family, seed, dataset_size=None, **layer_kw):
    """Architecture `model` of `family`, freshly initialised from `seed`; families whose penalties
    are scaled per training example get `dataset_size` (default: `train_size(hparams)`)."""
    keras.utils.set_random_seed(seed)
    info = tdata.info(hparams.dataset.dataset)
    if get_family(family).takes_dataset_size:
        layer_kw["dataset_size"] = dataset_size or train_size(hparams)
    with dtype_policy(hparams.training.precision):  # the layers keep it; compile then scales the loss
        return models.get_model(model, family=family, input_shape=info.input_shape, num_classes=info.num_classes,
                                **layer_kw)


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` while models are built, and put back after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def run_dir(root, prefix, hparams):
    return os.path.join(root, f"{prefix}_{digest(hparams.sections)}")


def hparams_file(run):
    return os.path.join(run, schema.HPARAMS)


def flags_file(run):
    return os.path.join(run, schema.FLAGS)


@functools.lru_cache(maxsize=1)
def versions():
    """What a run was made with, recorded in its metrics: tflth, TensorFlow, Keras, NumPy and
    Python versions, and the git commit of the tflth checkout where it is one ("+" marks
    uncommitted changes)."""
    try:
        tflth_version = importlib.metadata.version("tflth")
    except importlib.metadata.PackageNotFoundError:
        tflth_version = None
    return {"tflth": tflth_version, "commit": _commit(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _commit():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(repo, ".git")):
        return None
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "") if head.returncode == 0 else None


def metrics_file(folder):
    """A training's results, written last: the training is done."""
    return os.path.join(folder, schema.METRICS)


def final_weights(folder):
    return os.path.join(folder, "final.weights.h5")


def load_final_weights(model, folder):
    """Loads a finished training's final weights, checked against the SHA-256 its metrics
    recorded (runs from before tflth recorded it load unchecked); DamagedFile names a bad file
    and says how to train it again."""
    digest = io.read_json(metrics_file(folder)).get("weights_sha256") if os.path.exists(metrics_file(folder)) else None
    io.load_weights(model, final_weights(folder), digest,
                    remedy=f"remove it and {metrics_file(folder)}, then rerun the command that trained it")


def training_cost(rows):
    """{"flops_sparse", "flops_dense"}: a training's FLOPs (`tflth.pruning.flops`), from the
    engine's rows."""
    return {key: rows[-1].get(key) if rows else None for key in schema.FLOPS}


def training_metrics(model, data, seed, rows, start, spent, timing):
    """The metrics.json keys every finished training writes (`tflth.schema.TRAINING` less
    weights_remaining and weights_sha256, which the runner adds): `rows` from `engine.train`
    begun at step `start`, `spent` from `engine.Clock.spent`, `timing` its time split."""
    return {"seed": seed, "rows": rows, **spent, **engine.summarize_rows(rows, start), **training_cost(rows),
            "test_correct": io.pack_bits(engine.correct(model, data["test"])), "versions": versions(),
            "compiled": engine.compiled_with(model), "time_split": timing}


_CLAIMED = {}  # real path -> (lock file descriptor, depth): claims nest within one process


def lock_file(folder):
    return os.path.join(folder, ".lock")


@contextlib.contextmanager
def claim(folder):
    """Holds `folder` (a seed's or replicate's folder) for this process while it trains there:
    another process claiming it (the same command in a second terminal) gets RunBusy naming the
    holder, before it writes anything. An OS lock (flock on `.lock`), released when the holder
    ends, however it ends. Once held, the `.tmp-*` leftovers of writes killed mid-way are
    removed. Processes this one starts (`--workers`) work under its claim."""
    key = os.path.realpath(folder)
    if key in _CLAIMED:
        fd, depth = _CLAIMED[key]
        _CLAIMED[key] = (fd, depth + 1)
    else:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(lock_file(folder), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "a process"
            os.close(fd)
            raise RunBusy(f"{folder} is being trained by another process ({holder}); wait for it to end, or stop "
                          "it and rerun the same command to resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        _CLAIMED[key] = (fd, 1)
        io.remove_leftovers(folder)
    try:
        yield folder
    finally:
        fd, depth = _CLAIMED.pop(key)
        if depth > 1:
            _CLAIMED[key] = (fd, depth - 1)
        else:
            os.close(fd)  # releases the lock


def remove_checkpoint(folder):
    """Drops a finished training's resume point (`engine.train`'s checkpoint), once its results
    are written."""
    if os.path.exists(engine.progress_file(folder)):
        os.remove(engine.progress_file(folder))


def check_run_dir(run, hparams, file_format):
    """Raises ValueError if `run` exists with other hyperparameters or another format."""
    if os.path.exists(hparams_file(run)):
        saved = io.read_json(hparams_file(run))
        if isinstance(saved, dict) and saved.get("format", 1) != file_format:
            raise ValueError(f"{run} was written by another tflth (run-folder format {saved.get('format', 1)}, "
                             f"this one writes {file_format}) and cannot be resumed; move it away or pass "
                             "another --root")
        if _hparams_from(saved, run, type(hparams), "remove it and rerun the same command: it is written again "
                                                    "from the flags") != hparams:
            raise ValueError(f"{run} holds different hyperparameters: was a field renamed, or is {hparams_file(run)} "
                             "damaged?")
    return run


def read_hparams(run, cls, remedy=None):
    """The `cls` hyperparameters `run`'s hparams.json holds; DamagedFile if it holds none."""
    return _hparams_from(io.read_json(hparams_file(run)), run, cls, remedy)


def _hparams_from(saved, run, cls, remedy):
    try:
        return cls.from_dict(saved)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise DamagedFile(hparams_file(run), f"not the hyperparameters of a {cls.__name__}: {e}", remedy) from e


def prepare_run_dir(run, hparams, file_format):
    """Creates the run folder with its hyperparameters (checked if it already exists)."""
    check_run_dir(run, hparams, file_format)
    if not os.path.exists(hparams_file(run)):
        io.write_json(hparams_file(run), {"format": file_format, **hparams.to_dict()})
        io.write_text(flags_file(run), to_flagfile(hparams.sections))
    return run
