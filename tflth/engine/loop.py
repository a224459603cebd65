"""The one training loop every recipe uses: `train(model, data, ...)`.

One `model.fit` per run of equally spaced evaluation points (usually one per branch), on one
data stream whose batch i depends only on (seed, i). At every evaluation point a callback
averages BatchNorm's statistics over the replicas of a tf.distribute strategy, evaluates the
validation set, evaluates the test set where it matters (a new best validation
loss, the end, or always with `test_every_eval`), appends a row, writes TensorBoard scalars,
calls `on_point(step)`, checkpoints before a minute of training would go unsaved, and
prints a progress line every few seconds. A run resumed from its checkpoint reads the same
batches and gives the same rows as an uninterrupted one.
"""
import contextlib
import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tflth import distribute, io
from tflth.engine import state
from tflth.failures import NonFiniteLoss
from tflth.hparams import non_default
from tflth.ops import noise
from tflth.engine.streams import train_stream
from tflth.pruning import flops
from tflth.pruning.callbacks import keep_masks_after_ema

PRINT_SECONDS = 10.0
FLOPS_EVERY = 100  # steps between readings of the masks for the FLOP count, at most


def progress_file(folder):
    """The file of a training's evaluation rows so far, in its run folder."""
    return os.path.join(folder, "progress.npz")


def resumed_seconds(folder):
    """The training seconds a resume point holds (0.0 without one): what earlier processes spent
    on the training, so that a resumed training's cost counts them."""
    return Clock.resume(folder).seconds_before


class Clock:
    """The wall and CPU seconds a training has cost, the part of the processes it resumed from
    included (the CPU seconds of all this process's threads: `time.process_time`)."""

    def __init__(self, seconds=0.0, cpu_seconds=0.0):
        self.seconds_before, self.cpu_before = seconds, cpu_seconds
        self.wall_start, self.cpu_start = time.time(), time.process_time()

    @classmethod
    def resume(cls, folder):
        """A clock that starts from what `folder`'s resume point says was spent (0 without one)."""
        if not os.path.exists(progress_file(folder)):
            return cls()
        with io.reading(progress_file(folder)), np.load(progress_file(folder)) as saved:  # these entries alone
            return cls(*_spent_before(saved, saved.files))

    def spent(self, now=None):
        """{"seconds", "cpu_seconds"} so far (`now`: time.time() if the caller has just read it)."""
        cpu = None if self.cpu_before is None else self.cpu_before + time.process_time() - self.cpu_start
        return {"seconds": self.seconds_before + (now or time.time()) - self.wall_start, "cpu_seconds": cpu}


def _spent_before(saved, keys):
    """(seconds, cpu_seconds) a resume point holds; cpu_seconds None in one written before tflth
    recorded it (the training's CPU cost is then unknown, not the resumed part alone)."""
    return (float(saved["seconds"]) if "seconds" in keys else 0.0,
            float(saved["cpu_seconds"]) if "cpu_seconds" in keys else None)


PARTS = ("steps", "evaluation", "checkpoints", "points")  # where a training's wall time goes (`timing`)


@contextlib.contextmanager
def timed(timing, part):
    """Adds the wall seconds of the block to `timing[part]`."""
    began = time.perf_counter()
    try:
        yield
    finally:
        timing[part] = timing.get(part, 0.0) + time.perf_counter() - began


def tensorboard_dir(folder):
    """The folder of a training's TensorBoard logs, in its run folder."""
    return os.path.join(folder, "tb")


def diverged_file(folder):
    """Written when a training's loss became non-finite: the training is not finished, and the
    next run of the same command says so instead of training it again (remove it to retry)."""
    return os.path.join(folder, "diverged.txt")


def _suspects(hparams):
    """The flags a diverged training was given that may cause it, where they differ from their
    defaults: every training flag (a step too large is the usual cause: --lr, --optimizer,
    --precision, ...) and the numbers of the other sections (penalty strengths, ...); or --lr."""
    sections = getattr(hparams, "sections", (hparams.training,))
    changed = [f"--{name}={value}" for section in sections for name, value in non_default(section).items()
               if (section is hparams.training and name not in ("iterations", "eval_every"))
               or isinstance(value, float)]
    return ", ".join(changed) or f"--lr={hparams.training.lr}"


def _check_compiled_alike(saved, model, label):
    """A warning when a training resumes with XLA that began without it, or the reverse (a
    --jit_compile or --deterministic changed, or a tflth that decides otherwise), or under XLA
    with another noise generator (a tflth from before noise.SCHEME 2): XLA rounds differently,
    and layers that sample draw other noise (tflth.ops.noise), so the run is no longer
    bit-identical to an uninterrupted one."""
    if "jit_compile" not in saved:
        return
    if bool(saved["jit_compile"]) != bool(model.jit_compile):
        before, now = ("with", "without") if bool(saved["jit_compile"]) else ("without", "with")
        why = f"the training began {before} XLA and resumes {now} it (XLA rounds differently, and layers that " \
              "sample draw other noise)"
    elif model.jit_compile and int(saved.get("noise_scheme", 1)) != noise.SCHEME:
        why = "the training began under XLA with a tflth that drew noise with Philox there, and resumes with " \
              "ThreeFry (tflth.ops.noise): layers that sample draw other noise from here on"
    else:
        return
    print(f"warning: [{label}] {why}; its results will not be bit-identical to an uninterrupted run's",
          file=sys.stderr, flush=True)


def boundaries(start, stop, every, extra=()):
    """Evaluation points: multiples of `every` in (start, stop], `stop`, and `extra`."""
    points = set(range((start // every + 1) * every, stop + 1, every)) | {stop}
    points |= {p for p in extra if start < p <= stop}
    return sorted(points)


def segments(start, points):
    """Runs of equal intervals [(first step, interval, count)]: one `fit` each."""
    runs, previous = [], start
    for point in points:
        length = point - previous
        if runs and runs[-1][1] == length:
            runs[-1][2] += 1
        else:
            runs.append([previous, length, 1])
        previous = point
    return [tuple(run) for run in runs]


def steps_per_execution(*intervals, limit=100):
    """The largest count <= limit dividing every interval: Keras runs whole executions."""
    step = math.gcd(*intervals)
    return max(d for d in range(1, limit + 1) if step % d == 0)


def _loss_key(row):
    return (math.isnan(row["val_loss"]), row["val_loss"])  # a NaN loss is never the best


def summarize_rows(rows, start):
    """Early stopping: the evaluation (after `start`) with the lowest validation loss."""
    trained = [r for r in rows if r["step"] > start] or rows
    best = min(trained, key=_loss_key)
    return {"early_stop_step": best["step"], "early_stop_test_acc": best["test_acc"],
            "early_stop_val_loss": best["val_loss"], "final_test_acc": rows[-1]["test_acc"]}


def _eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def correct(model, stream):
    """Per example of an evaluation stream, in order: is the model's top class the label?
    (What paired tests of two methods compare: the same test examples.)"""
    hits = [np.argmax(np.asarray(model(x, training=False)), axis=-1) == np.asarray(y) for x, y in stream]
    return np.concatenate(hits)


def evaluate(model, stream):
    """{"loss", "accuracy"} of a compiled model on an evaluation stream: the loss is the data term
    ("cross_entropy", compile_model's metric) where the model has it, not Keras' loss with the
    layers' penalties added."""
    result = model.evaluate(stream, verbose=0, return_dict=True)
    return {"loss": result.get("cross_entropy", result["loss"]), "accuracy": result["accuracy"]}


class _Recorder(keras.callbacks.Callback):
    """Evaluates, records, checkpoints and reports at the end of every `fit` epoch."""

    def __init__(self, data, folder, start, stop, rows, on_point, verbose, checkpoint_seconds,
                 test_every_eval, label, clock, batch_size, suspects, timing):
        super().__init__()
        self.timing = timing  # seconds per part (PARTS) of this process's share of the training
        self.clock, self.batch_size = clock, batch_size  # the clock counts earlier processes' part
        self.suspects, self.last_finite = suspects, None  # what a diverged training names
        self.data, self.folder, self.start, self.stop, self.rows = data, folder, start, stop, rows
        self.on_point, self.verbose, self.label = on_point, verbose, label
        self.checkpoint_seconds, self.test_every_eval = checkpoint_seconds, test_every_eval
        self.writer = tf.summary.create_file_writer(tensorboard_dir(folder))
        self.first = self.interval = None
        self.began = self.last_checkpoint = self.last_print = self.last_point = time.time()
        self.resumed_at = rows[-1]["step"] if rows else start
        self.counted = self.resumed_at  # training FLOPs are counted up to this step
        self.flops = {key: rows[-1].get(f"flops_{key}") if rows else 0 for key in ("sparse", "dense")}

    def count_flops(self, step):
        """Adds the training FLOPs of steps (counted, step] at the masks' present density. Masks
        change before a step (pruning callbacks act at execution boundaries), so the masks read
        after an execution are the ones it trained with. They are read at most every FLOPS_EVERY
        steps (reading them costs about a step of LeNet-300-100), so a change between readings is
        charged from the previous reading on: exact where masks change at multiples of
        FLOPS_EVERY with steps_per_execution dividing it (every study of tflth's recipes),
        within FLOPS_EVERY steps per change otherwise."""
        if step <= self.counted:
            return
        forward = flops.forward_flops(self.model)
        for key, value in self.flops.items():
            per_step = flops.step_flops(forward[key], self.batch_size)
            self.flops[key] = None if value is None or per_step is None else value + per_step * (step - self.counted)
        self.counted = step

    def check_finite(self, step, name, value):
        """NonFiniteLoss, and the diverged file, if `value` is NaN or infinite: training from
        there on would only waste time, and its results must never be read as finished."""
        if value is None or math.isfinite(value):
            if name == "train_loss" and value is not None:
                self.last_finite = (step, value)
            return
        last = (f"last finite training loss {self.last_finite[1]:.4g} at step {self.last_finite[0]}"
                if self.last_finite else "no finite training loss before")
        message = (f"[{self.label}] the {name.replace('_', ' ')} became {value} by step {step} ({last}); "
                   f"nothing was recorded as finished. Flags likely at fault: {self.suspects}")
        io.write_text(diverged_file(self.folder), message + "\n")
        raise NonFiniteLoss(message)

    def record(self, step, train_loss):
        # One BatchNorm statistic on every replica before it evaluates or is saved, at points
        # that do not depend on timing (a resumed run averages where the uninterrupted one did).
        distribute.average_replica_statistics(self.model)
        self.count_flops(step)
        self.check_finite(step, "train_loss", train_loss)
        row = {"step": step, "train_loss": train_loss, **self._evaluate(step),
               "flops_sparse": self.flops["sparse"], "flops_dense": self.flops["dense"]}
        self.check_finite(step, "validation_loss", row["val_loss"])
        self.rows.append(row)
        with self.writer.as_default():
            for key, value in row.items():
                if key != "step" and value is not None:
                    tf.summary.scalar(key, value, step=step)
        if self.on_point:
            with timed(self.timing, "points"):
                self.on_point(step)
        now = time.time()
        # Checkpoint now if waiting for the next point (about as long as the last interval took)
        # would leave more than checkpoint_seconds unsaved: a kill then loses at most
        # max(checkpoint_seconds, one interval) of training.
        since, interval, self.last_point = now - self.last_checkpoint, now - self.last_point, now
        if self.start < step < self.stop and since + interval > self.checkpoint_seconds:
            with timed(self.timing, "checkpoints"):
                state.save(progress_file(self.folder), self.model, step=step, rows=json.dumps(self.rows),
                           jit_compile=bool(self.model.jit_compile), noise_scheme=noise.SCHEME,
                           **self.clock.spent(now))
            self.last_checkpoint = now
        if self.verbose and step > self.start and (step == self.stop or now - self.last_print >= PRINT_SECONDS):
            self.last_print = now
            self._report(row, (now - self.began) / max(1, step - self.resumed_at))

    def _evaluate(self, step):
        """Validation always; test at a new best validation loss, at the end, or always if asked."""
        val = self.evaluate(self.data["validation"])
        best = min((r["val_loss"] for r in self.rows if r["step"] > self.start and not math.isnan(r["val_loss"])),
                   default=math.inf)
        test = {"loss": None, "accuracy": None}
        last = step == self.stop or self.model.stop_training  # a callback may end training early
        if self.test_every_eval or last or (step > self.start and val["loss"] < best):
            test = self.evaluate(self.data["test"])
        return {"val_loss": val["loss"], "val_acc": val["accuracy"],
                "test_loss": test["loss"], "test_acc": test["accuracy"]}

    def evaluate(self, stream):
        with timed(self.timing, "evaluation"):
            return evaluate(self.model, stream)

    def test_last_row(self):
        """The last row of a run a callback stopped gets the test set too, like the end's."""
        row = self.rows[-1]
        if row["test_acc"] is None:
            test = self.evaluate(self.data["test"])
            row.update(test_loss=test["loss"], test_acc=test["accuracy"])

    def _report(self, row, per_step):
        test = f" test_acc {100 * row['test_acc']:.2f}%" if row["test_acc"] is not None else ""
        print(f"[{self.label}] step {row['step']}/{self.stop} train_loss {row['train_loss']:.4f} "
              f"val_loss {row['val_loss']:.4f} val_acc {100 * row['val_acc']:.2f}%{test} "
              f"{1000 * per_step:.2f} ms/it eta {_eta(per_step * (self.stop - row['step']))}", flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.done_in_epoch = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done_in_epoch = batch + 1  # `batch` is the last step of the execution
        step = self.first + self.epoch * self.interval + self.done_in_epoch
        self.check_finite(step, "train_loss", (logs or {}).get("loss"))  # at once, not at the evaluation
        if step - self.counted >= FLOPS_EVERY:
            self.count_flops(step)

    def on_epoch_end(self, epoch, logs=None):
        # Steps counted, not assumed: a callback that stops training ends the epoch early.
        self.record(self.first + epoch * self.interval + self.done_in_epoch, float(logs["loss"]))
        row = self.rows[-1]  # for the callbacks after this one (EarlyStopping monitors val_loss)
        logs.update(val_loss=row["val_loss"], val_accuracy=row["val_acc"])

    def on_train_end(self, logs=None):
        keep_masks_after_ema(self.model)
        if getattr(self.model.optimizer, "use_ema", False) and self.rows:
            # Keras has just replaced the weights with their moving averages (`--ema`): the
            # last row is what those give, the model the run ends with.
            val, test = self.evaluate(self.data["validation"]), self.evaluate(self.data["test"])
            self.rows[-1].update(val_loss=val["loss"], val_acc=val["accuracy"], test_loss=test["loss"],
                                 test_acc=test["accuracy"], ema=True)


def _resume(model, folder, start, timing, label, verbose):
    """(step, rows, clock) to go on from: `folder`'s checkpoint restored into `model`, or `start`
    with nothing done. A training that diverged before is refused."""
    if os.path.exists(diverged_file(folder)):
        with open(diverged_file(folder)) as f:
            before = f.read().strip()
        raise NonFiniteLoss(f"{folder} diverged before: {before} (remove {diverged_file(folder)} to train it "
                            "again, or change those flags: that makes a new run folder)")
    if not os.path.exists(progress_file(folder)):
        return start, [], Clock()
    with timed(timing, "checkpoints"):
        saved = state.load(progress_file(folder))
        state.restore(model, saved)
    step = int(saved["step"])
    if verbose:
        print(f"[{label}] resuming at step {step}", flush=True)
    _check_compiled_alike(saved, model, label)
    return step, json.loads(str(saved["rows"])), Clock(*_spent_before(saved, saved))  # earlier processes' part


def _check_segments(model, runs, step, stop):
    every = model.steps_per_execution or 1
    if any(interval % every for _, interval, _ in runs):
        # Keras would run the last execution of an epoch in full and skip batches silently.
        raise ValueError(f"steps_per_execution={every} must divide every interval between evaluations "
                         f"{sorted({interval for _, interval, _ in runs})}; see engine.steps_per_execution")
    if getattr(model.optimizer, "use_ema", False) and len(runs) > 1:
        # Keras writes the averages into the weights at the end of every fit: training would go on
        # from them. One fit per training needs evaluation points at equal intervals.
        raise ValueError(f"ema: the moving average needs one fit per training, i.e. evaluations at equal "
                         f"intervals from step {step} to {stop}; got {[r[1] for r in runs]} (choose --iterations "
                         "a multiple of --eval_every, no extra evaluation points)")


def train(model, data, hparams, folder, *, start=0, stop=None, seed=0, label="train", extra_points=(),
          on_point=None, callbacks=(), verbose=True, checkpoint_seconds=60.0, test_every_eval=False, timing=None):
    """Trains a compiled `model` (start weights and masks in place) from iteration `start` to
    `stop` (default `hparams.training.iterations`), resuming from `folder`'s checkpoint if
    there is one.

    Args:
      data: {"x", "y": uint8 training images and labels; "validation", "test": eval streams}.
      hparams: anything with `.dataset` (DatasetHparams) and `.training` (TrainingHparams).
      extra_points: iterations evaluated besides the multiples of eval_every (a rewind point).
      on_point: `on_point(step)` after every evaluation, the one at `start` included.
      callbacks: more Keras callbacks for `fit` (pruning schedules, ...).
      checkpoint_seconds: checkpoint at an evaluation point when waiting for the next one would
        leave more than this long unsaved, so a killed run loses at most max(one interval, this
        long) of training.
      timing: a dict to which the wall seconds of this call are added by part (PARTS): "steps"
        (Keras' fit: the training steps, the callbacks' work between them, tracing and XLA
        compilation), "evaluation" (validation and test sets), "checkpoints" (saving and
        resuming) and "points" (`on_point`).
    Returns the rows: [{"step", "train_loss", "val_loss", "val_acc", "test_loss", "test_acc",
    "flops_sparse", "flops_dense"}] (test values are None where the test set was not evaluated;
    the FLOPs are the training FLOPs from `start` to the row's step, `tflth.pruning.flops`).
    """
    training, stop = hparams.training, stop or hparams.training.iterations
    timing = {} if timing is None else timing
    began, parts_before = time.perf_counter(), sum(timing.values())
    step, rows, clock = _resume(model, folder, start, timing, label, verbose)
    runs = segments(step, boundaries(step, stop, training.eval_every, extra_points))
    _check_segments(model, runs, step, stop)
    recorder = _Recorder(data, folder, start, stop, rows, on_point, verbose, checkpoint_seconds,
                         test_every_eval, label, clock, hparams.dataset.batch_size, _suspects(hparams), timing)
    recorder.set_model(model)
    if not rows:
        recorder.record(start, None)
    for first, interval, count in runs:
        recorder.first, recorder.interval = first, interval
        stream = train_stream(data["x"], data["y"], hparams.dataset.batch_size, seed, first, hparams.dataset.augment)
        model.fit(stream, steps_per_epoch=interval, epochs=count, verbose=0, shuffle=False,
                  callbacks=[recorder, *callbacks])
        if model.stop_training:  # a callback asked to stop (EarlyStopping, TerminateOnNaN, ...)
            recorder.test_last_row()
            break
    recorder.writer.close()
    # The steps: what the other parts leave of this call's time.
    timing["steps"] = timing.get("steps", 0.0) + time.perf_counter() - began - (sum(timing.values()) - parts_before)
    return rows
