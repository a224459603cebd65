"""Training one branch of one level: deterministic data, evaluation, checkpoints, resume.

The data order is a pure function of (seed, iteration), so a run resumed from its
last checkpoint sees exactly the batches an uninterrupted run would have seen.
"""
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tflth import io
from tflth.lottery import paths


@keras.saving.register_keras_serializable(package="tflth")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then the learning rate times `gamma` at each drop."""

    def __init__(self, lr, warmup=0, drops=(), gamma=0.1):
        self.lr, self.warmup, self.drops, self.gamma = lr, int(warmup), tuple(drops), gamma

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        passed = tf.add_n([tf.cast(step >= d, tf.float32) for d in self.drops]) if self.drops else 0.0
        rate = self.lr * tf.pow(self.gamma, passed)
        if self.warmup:
            rate *= tf.minimum(1.0, (step + 1.0) / self.warmup)
        return rate

    def get_config(self):
        return {"lr": self.lr, "warmup": self.warmup, "drops": list(self.drops), "gamma": self.gamma}


def make_optimizer(training):
    rate = training.lr
    if training.warmup or training.drops:
        rate = StepSchedule(training.lr, training.warmup, training.drops, training.lr_gamma)
    decay = training.weight_decay or None
    if training.optimizer == "adam":
        return keras.optimizers.Adam(rate, weight_decay=decay)
    return keras.optimizers.SGD(rate, momentum=training.momentum, weight_decay=decay)


def compile_model(model, training, steps_per_execution=1):
    model.compile(make_optimizer(training), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    model.optimizer.build(model.trainable_variables)


def _augment(image, seed):
    """Pad-4 random crop and horizontal flip, seeded per example (deterministic)."""
    shape = tf.shape(image)
    padded = tf.image.pad_to_bounding_box(image, 4, 4, shape[0] + 8, shape[1] + 8)
    image = tf.image.stateless_random_crop(padded, shape, seed=seed)
    return tf.image.stateless_random_flip_left_right(image, seed=seed + 1)


def train_stream(x, y, batch_size, seed, start, stop, augment=False):
    """Batches `start`..`stop - 1` of an endless sequence of seeded epochs over (x, y)."""
    n = len(x)
    first, last = start * batch_size, stop * batch_size
    epochs = range(first // n, (last - 1) // n + 1)
    order = np.concatenate([np.random.default_rng([seed, e]).permutation(n) for e in epochs])
    order = order[first - epochs.start * n:last - epochs.start * n].astype(np.int32)
    images, labels = tf.constant(x), tf.constant(y)

    def example(position, index):
        image = tf.cast(tf.gather(images, index), tf.float32) / 255.0
        if augment:
            image = _augment(image, tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)]))
        return image, tf.gather(labels, index)

    positions = tf.range(first, last, dtype=tf.int64)
    ds = tf.data.Dataset.from_tensor_slices((positions, order))
    if augment:
        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    else:
        ds = ds.batch(batch_size).map(example)  # gather whole batches: no per-example work
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_stream(x, y, batch_size=1000):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b)).cache().prefetch(tf.data.AUTOTUNE)


def boundaries(start, stop, every, extra=()):
    """Evaluation points: multiples of `every` in (start, stop], `stop`, and `extra`."""
    points = set(range((start // every + 1) * every, stop + 1, every)) | {stop}
    points |= {p for p in extra if start < p <= stop}
    return sorted(points)


def steps_per_execution(hparams, limit=100):
    """The largest count <= limit that divides every training interval, since Keras runs
    whole executions. Intervals run between 0, k, the multiples of eval_every and the end."""
    step = math.gcd(hparams.training.eval_every, hparams.training.iterations, hparams.pruning.rewind_iteration)
    return max(d for d in range(1, limit + 1) if step % d == 0)


def _save_progress(path, model, step, rows):
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
    arrays["step"] = np.array(step)
    arrays["rows"] = np.array(json.dumps(rows))
    io.write_npz(path, arrays, compress=False)  # written often: speed over size


def _load_progress(path, model):
    state = io.read_npz(path)
    model.set_weights([state[f"w{i}"] for i in range(len(model.weights))])
    for i, v in enumerate(model.optimizer.variables):
        v.assign(state[f"o{i}"])
    return int(state["step"]), json.loads(str(state["rows"]))


def _eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train_branch(model, data, hparams, branch_dir, *, start, seed, label, on_step=None, verbose=True):
    """Trains `model` (compiled, masks and start weights in place) from `start` to the end.

    Evaluates every `eval_every` iterations, appends a row per evaluation, checkpoints
    there, and resumes from the last checkpoint if one exists. `on_step(step)` runs at
    each evaluation point (the runner saves the rewind checkpoint with it).
    Returns the rows: [{"step", "train_loss", "val_loss", "val_acc", "test_loss", "test_acc"}].
    """
    training = hparams.training
    progress = paths.progress(branch_dir)
    points = boundaries(start, training.iterations, training.eval_every, extra=[hparams.pruning.rewind_iteration])
    rows, step = [], start
    if os.path.exists(progress):
        step, rows = _load_progress(progress, model)
        if verbose:
            print(f"[{label}] resuming at step {step}", flush=True)
    writer = tf.summary.create_file_writer(paths.tensorboard(branch_dir))

    def evaluate(at, train_loss):
        val = model.evaluate(data["validation"], verbose=0, return_dict=True)
        test = model.evaluate(data["test"], verbose=0, return_dict=True)
        row = {"step": at, "train_loss": train_loss, "val_loss": val["loss"], "val_acc": val["accuracy"],
               "test_loss": test["loss"], "test_acc": test["accuracy"]}
        with writer.as_default():
            for key, value in row.items():
                if key != "step" and value is not None:
                    tf.summary.scalar(key, value, step=at)
        rows.append(row)
        return row

    if not rows:
        evaluate(start, None)
        if on_step:
            on_step(start)
    began, first_step = time.time(), step
    for point in points:
        if point <= step:
            continue
        stream = train_stream(data["x"], data["y"], hparams.dataset.batch_size, seed, step, point,
                              hparams.dataset.augment)
        history = model.fit(stream, epochs=1, verbose=0, shuffle=False)
        step = point
        row = evaluate(step, float(history.history["loss"][-1]))
        if on_step:
            on_step(step)
        if step < training.iterations:
            _save_progress(progress, model, step, rows)
        if verbose:
            rate = (time.time() - began) / (step - first_step)
            print(f"[{label}] step {step}/{training.iterations} train_loss {row['train_loss']:.4f} "
                  f"val_loss {row['val_loss']:.4f} val_acc {100 * row['val_acc']:.2f}% "
                  f"test_acc {100 * row['test_acc']:.2f}% eta {_eta(rate * (training.iterations - step))}",
                  flush=True)
    writer.close()
    return rows


def summarize_rows(rows, start):
    """Early stopping: the evaluation (after `start`) with the lowest validation loss."""
    trained = [r for r in rows if r["step"] > start] or rows
    best = min(trained, key=lambda r: r["val_loss"])
    return {"early_stop_step": best["step"], "early_stop_test_acc": best["test_acc"],
            "early_stop_val_loss": best["val_loss"], "final_test_acc": rows[-1]["test_acc"]}
