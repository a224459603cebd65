"""Keras callbacks that trigger pruning, snapshots and rewinding, and log sparsity.

They only decide *when*; the math lives in pruner.py and rewind.py.
"""
import dataclasses

import keras
import tensorflow as tf

from tflth import distribute
from tflth.arguments import is_integer
from tflth.pruning import rewind as rw
from tflth.pruning.masks import apply_mask, prunable_layers, sparsity
from tflth.pruning.pruner import check_prune_args, current_sparsity, prune, prune_to
from tflth.pruning.scores import get_score


class StepCallback(keras.callbacks.Callback):
    """Calls `at_step(step)` once for every training step, before it runs: the base of tflth's
    schedules (pruning, rewinding snapshots, SET/RigL, KL warm-up) and of your own. Subclass it
    and define `at_step`; e.g. a learning-rate or penalty schedule that reads `self.model`.

    The count lives in the callback: it starts from the optimizer's step the first time the
    callback trains, then goes on across `fit` calls, so neither a second `fit` nor rewinding
    the optimizer (and its learning-rate schedule) replays the schedule. With
    `steps_per_execution > 1` Keras calls batch hooks once per execution, so the steps in
    between are visited late, at the next execution boundary (`self.late` is then True).
    """

    def __init__(self):
        super().__init__()
        self.steps_done = None  # steps trained with this callback, from the first fit on
        self.late = False

    def on_train_begin(self, logs=None):
        if self.steps_done is None:
            self.steps_done = int(self.model.optimizer.iterations.numpy())
        self._next = self.steps_done

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.steps_done

    def on_train_batch_begin(self, batch, logs=None):
        now = self._epoch_start + batch
        for step in range(self._next, now + 1):
            self.late = step < now
            self.at_step(step)
        self._next = now + 1

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done = self._epoch_start + batch + 1

    def on_train_end(self, logs=None):
        keep_masks_after_ema(self.model)

    def at_step(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define at_step(step), what to do before each step")


def keep_masks_after_ema(model):
    """An optimizer with `use_ema=True` overwrites the weights with their moving averages at the
    end of `fit`, and those are not zero where masks are: zero the pruned weights again.
    (Keras does that before calling `on_train_end`, so every tflth callback calls this there.)"""
    if getattr(model.optimizer, "use_ema", False):
        for layer in prunable_layers(model):
            apply_mask(layer)


class Snapshot(StepCallback):
    """Remembers all weights and the optimizer's state at training step `iteration` (0: the
    initialisation), for `Rewind`.

    With `steps_per_execution > 1`, `iteration` must fall on an execution boundary: Keras
    cannot stop in the middle of one, and a snapshot of a later step would be mislabelled.
    Under several replicas it first averages BatchNorm's statistics over them (an all-reduce:
    on several workers, give every worker the callback).
    """

    def __init__(self, iteration=0):
        super().__init__()
        if not is_integer(iteration) or iteration < 0:
            raise ValueError(f"Snapshot: iteration={iteration!r} must be an integer >= 0")
        self.iteration = iteration
        self.weights = self.optimizer = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        every = self.model.steps_per_execution or 1
        if self.weights is None and every > 1 and (self.iteration - self.steps_done) % every:
            raise ValueError(self._misaligned(every))

    def at_step(self, step):
        if step == self.iteration and self.weights is None:
            if self.late:
                raise ValueError(self._misaligned(self.model.steps_per_execution))
            distribute.average_replica_statistics(self.model)  # one BatchNorm statistic to rewind to
            self.weights = rw.snapshot_weights(self.model)
            self.optimizer = rw.snapshot_optimizer(self.model)

    def _misaligned(self, every):
        return (f"Snapshot: iteration={self.iteration} is not on an execution boundary of "
                f"steps_per_execution={every} (Keras runs {every} steps between callbacks); choose an "
                f"iteration that is a multiple of it, or compile with a steps_per_execution that divides it")


OPTIMIZER_POLICIES = ("fresh", "snapshot", "keep")


def _has_schedule(optimizer):
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # unwrap a LossScaleOptimizer
    return isinstance(optimizer.get_config().get("learning_rate"), dict)  # a serialized schedule


@dataclasses.dataclass
class Rewind:
    """What happens to the surviving weights and the optimizer right after a pruning step.

    Rewind(snapshot)                      weights back to the snapshot's iteration k (lottery-ticket
                                          rewinding), optimizer fresh
    Rewind(snapshot, optimizer="snapshot")  ... optimizer state of iteration k too (moments and
                                          step, so a learning-rate schedule resumes at k)
    Rewind(snapshot, weights=False, optimizer="snapshot")
                                          learning-rate rewinding (Renda et al. 2020)
    Rewind(reinit=True, seed=s)           fresh random weights: the re-initialisation control

    `optimizer`: "fresh" (zero moments, step 0: a learning-rate schedule restarts at 0, so with a
    schedule this is only allowed for k = 0), "snapshot" (the state saved at k) or "keep".
    Keras reads Adam's bias correction and the schedule from the same step counter, so zero
    moments with the step set to k > 0 would make the first steps several times too large:
    that combination is not offered.
    """
    snapshot: Snapshot | None = None
    weights: bool = True
    reinit: bool = False
    optimizer: str = "fresh"
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZER_POLICIES:
            raise ValueError(f"Rewind: optimizer={self.optimizer!r} is unknown; allowed: {list(OPTIMIZER_POLICIES)}")
        if self.reinit and self.snapshot is not None and self.weights:
            raise ValueError("Rewind: give either snapshot= (with weights=True) or reinit=True, not both")
        if (self.weights and not self.reinit or self.optimizer == "snapshot") and self.snapshot is None:
            raise ValueError("Rewind: snapshot= is required unless reinit=True or weights=False "
                             "(and optimizer is not 'snapshot')")

    def check(self, model):
        """Raises ValueError if this rewind cannot be done right on `model` (PruneCallback
        calls it when training begins, not hours later when it prunes)."""
        if self.optimizer == "fresh" and self.snapshot is not None and self.snapshot.iteration > 0 \
                and _has_schedule(model.optimizer):
            raise ValueError(f"Rewind: optimizer='fresh' restarts the learning-rate schedule at step 0, not at "
                             f"the snapshot's iteration {self.snapshot.iteration}; use optimizer='snapshot'")

    def __call__(self, model):
        if self.snapshot is not None and self.snapshot.weights is None:
            raise RuntimeError(f"Rewind: the snapshot at iteration {self.snapshot.iteration} "
                               "was not taken yet (is the Snapshot callback in fit's callbacks?)")
        self.check(model)
        if self.reinit:
            rw.restore_weights(model, rw.fresh_weights(model, self.seed))
        elif self.weights:
            rw.restore_weights(model, self.snapshot.weights)
        if self.optimizer == "fresh":
            rw.reset_optimizer(model)
        elif self.optimizer == "snapshot":
            rw.restore_optimizer(model, self.snapshot.optimizer)


class PruneCallback(StepCallback):
    """Prunes on a schedule (see schedules.py), then optionally rewinds.

    The arguments after `schedule` are those of `tflth.pruning.prune`: with `threshold`, every
    pruning step also removes the weights scoring below it (`Every(1000)` with
    `score="log_alpha", threshold=-3` prunes as sparse variational dropout, while training).
    With `allocation` ("uniform", "global", "erk"; see `tflth.pruning.prune_to`) and
    `overrides`, each step prunes to the sparsity that removing the schedule's fraction of the
    remaining weights gives, shared among layers that way (under `PolynomialDecay`, overridden
    layers follow the schedule to their own sparsity); `regrow=True` (straight-through
    layers) chooses the masks afresh from the dense weights at each step. `score_args` go to the
    score (`{"data": (x, y)}` for "snip"; `data` may be a function of the step that returns the
    batch; other values, a Keras loss for one, are passed as they are).
    """

    def __init__(self, schedule, score="magnitude", scope="layerwise", rates=None,
                 exclude=(), rewind=None, seed=0, verbose=1, threshold=None, allocation=None, overrides=None,
                 regrow=False, score_args=None):
        super().__init__()
        if threshold is None and getattr(schedule, "fraction", None) == 0:
            raise ValueError(f"PruneCallback: {schedule} removes nothing without threshold=; give it a fraction "
                             "or pass threshold=")
        # One verb per step, chosen here: `prune` removes the fraction of what remains (per layer
        # or globally); a target that must be shared out among layers is `prune_to`'s.
        sharing = allocation is not None or bool(overrides) or regrow
        if sharing and (threshold is not None or rates):
            raise ValueError("PruneCallback: allocation=, overrides= and regrow= prune to a sparsity; they do not "
                             "go with threshold= or rates=")
        if getattr(get_score(score), "per_model", False) and "data" not in (score_args or {}):  # unknown: fails here
            raise ValueError(f"PruneCallback: score {score!r} reads the loss gradient of data: pass "
                             "score_args={'data': (x, y)}")
        self.schedule, self.score, self.scope, self.threshold = schedule, score, scope, threshold
        self.rates, self.exclude, self.rewind = rates, tuple(exclude), rewind
        self.allocation, self.overrides, self.regrow = allocation, overrides, regrow
        self.seed, self.verbose, self.score_args = seed, verbose, dict(score_args or {})
        self.pruned_at = []
        self._prune = self._prune_to if sharing else self._prune_fraction

    def _prune_fraction(self, fraction, context):
        prune(self.model, fraction, score=self.score, scope=self.scope, rates=self.rates, exclude=self.exclude,
              threshold=self.threshold, **context)

    def _prune_to(self, fraction, context):
        """To the sparsity that removing `fraction` of the remaining weights gives."""
        target = 1.0 - (1.0 - current_sparsity(self.model, self.exclude)) * (1.0 - fraction)
        overrides = self.overrides
        final = getattr(self.schedule, "target", None)  # a gradual schedule's last sparsity
        if overrides and final:  # overridden layers follow the schedule to their own sparsity
            overrides = {key: value * min(target / final, 1.0) for key, value in overrides.items()}
        prune_to(self.model, target, score=self.score, allocation=self.allocation or "uniform",
                 overrides=overrides, exclude=self.exclude, regrow=self.regrow, **context)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.rewind is not None:
            self.rewind.check(self.model)
        _, layers, _, _ = check_prune_args(self.model, 0.0, self.score, self.scope, self.rates, self.exclude,
                                           self.threshold)
        score = get_score(self.score)
        if not getattr(score, "per_model", False):  # a score the layers cannot give fails now, not mid-training
            for layer in layers:
                score(layer, **self._context(0))

    def _context(self, step):
        """The score's arguments at `step` (`data`, if a function, is called with it)."""
        return {"seed": self.seed + step,
                **{k: v(step) if k == "data" and callable(v) else v for k, v in self.score_args.items()}}

    def at_step(self, step):
        due, fraction = self.schedule(step)
        if not due:
            return
        self._prune(fraction, self._context(step))
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
        keep_masks_after_ema(self.model)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
