"""Keras callbacks that trigger pruning, snapshots and rewinding, and log sparsity.

They only decide *when*; the math lives in pruner.py and rewind.py.
"""
import dataclasses

import keras
import tensorflow as tf

from tflth.pruning import rewind as rw
from tflth.pruning.masks import sparsity
from tflth.pruning.pruner import prune


class _StepCallback(keras.callbacks.Callback):
    """Calls `at_step(step)` once for every training step, before it runs.

    Steps are counted in Python from the optimizer's step at the start of `fit`:
    rewinding the optimizer (and its learning-rate schedule) does not rewind the
    pruning schedule, and no variable is read per batch. With
    `steps_per_execution > 1` Keras calls batch hooks once per execution, so the
    steps in between are visited at the next execution boundary.
    """

    def on_train_begin(self, logs=None):
        self._next = self._epoch_start = int(self.model.optimizer.iterations.numpy())
        self._steps_done = self._next

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._steps_done

    def on_train_batch_begin(self, batch, logs=None):
        now = self._epoch_start + batch
        for step in range(self._next, now + 1):
            self.at_step(step)
        self._next = now + 1

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = self._epoch_start + batch + 1

    def at_step(self, step):
        raise NotImplementedError


class Snapshot(_StepCallback):
    """Remembers all weights at optimizer step `iteration` (0: the initialisation)."""

    def __init__(self, iteration=0):
        super().__init__()
        if iteration < 0:
            raise ValueError(f"iteration={iteration} must be >= 0")
        self.iteration = iteration
        self.weights = None

    def at_step(self, step):
        if step == self.iteration and self.weights is None:
            self.weights = rw.snapshot_weights(self.model)


@dataclasses.dataclass
class Rewind:
    """What happens to the surviving weights right after a pruning step.

    Rewind(snapshot)                  weights and learning-rate schedule go back to the
                                      snapshot's iteration (lottery-ticket rewinding)
    Rewind(snapshot, weights=False)   learning-rate rewinding (Renda et al. 2020)
    Rewind(reinit=True, seed=s)       fresh random weights: the re-initialisation control
    """
    snapshot: Snapshot | None = None
    weights: bool = True
    lr: bool = True
    reinit: bool = False
    reset_optimizer: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.reinit and self.snapshot is not None and self.weights:
            raise ValueError("Rewind: give either snapshot= (with weights=True) or reinit=True, not both")
        if self.weights and not self.reinit and self.snapshot is None:
            raise ValueError("Rewind: snapshot= is required unless reinit=True or weights=False")

    def __call__(self, model):
        if self.reinit:
            rw.restore_weights(model, rw.fresh_weights(model, self.seed))
        elif self.weights:
            if self.snapshot.weights is None:
                raise RuntimeError(f"Rewind: the snapshot at iteration {self.snapshot.iteration} "
                                   "was not taken yet (is the Snapshot callback in fit's callbacks?)")
            rw.restore_weights(model, self.snapshot.weights)
        step = self.snapshot.iteration if self.snapshot is not None else 0
        if self.reset_optimizer:
            rw.reset_optimizer(model.optimizer, step if self.lr else None)
        elif self.lr:
            model.optimizer.iterations.assign(step)


class PruneCallback(_StepCallback):
    """Prunes on a schedule (see schedules.py), then optionally rewinds.

    The arguments after `schedule` are those of `tflth.pruning.prune`.
    """

    def __init__(self, schedule, score="magnitude", scope="layerwise", rates=None,
                 exclude=(), rewind=None, seed=0, verbose=1):
        super().__init__()
        self.schedule, self.score, self.scope = schedule, score, scope
        self.rates, self.exclude, self.rewind = rates, tuple(exclude), rewind
        self.seed, self.verbose = seed, verbose
        self.pruned_at = []

    def at_step(self, step):
        due, fraction = self.schedule(step)
        if not due:
            return
        prune(self.model, fraction, score=self.score, scope=self.scope, rates=self.rates,
              exclude=self.exclude, seed=self.seed + step)
        if self.rewind is not None:
            self.rewind(self.model)
        self.pruned_at.append(step)
        if self.verbose:
            print(f"\n[tflth] step {step}: pruned, {100 * sparsity(self.model)['total']:.2f}% of "
                  f"prunable weights now zero" + (", rewound" if self.rewind else ""))


class SparsityLogger(keras.callbacks.Callback):
    """Adds per-layer and total sparsity to the epoch logs (so to History) and,
    with `log_dir`, writes them as TensorBoard scalars."""

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        values = {f"sparsity/{name}": value for name, value in sparsity(self.model).items()}
        if logs is not None:
            logs.update(values)
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for name, value in values.items():
                    tf.summary.scalar(name, value, step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
