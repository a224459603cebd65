"""A keras-tuner HyperModel whose trials are sparse-training runs of the one engine.

    hypermodel = SparseHyperModel(base, space.parse_space(["strength=log:0.01:1"]), root="runs")
    tuner = keras_tuner.RandomSearch(hypermodel, objective=objective("score"), max_trials=8,
                                     directory="runs/tune", project_name="l0")
    tuner.search()          # data, model and training come from `base` (TrainerHparams)

Each trial is `base` with the trial's values put in (`space.apply`), trained by
`tflth.trainer.runner.train_seed` in the run folder its hyperparameters name (or, for a
`LotteryHparams` base, by the lottery runner to `levels` levels, the trial's model being the
last level's ticket, e.g. to search the rewinding iteration): its pruning
schedule, L0 gates, KL terms, optimizer and data order are made afresh from the hyperparameters
(nothing carries over from the trial before), an interrupted trial resumes where it stopped,
and a trial whose hyperparameters an earlier run already trained is read, not retrained.

The objectives are measured on the model a trial ends with, as it will be exported (L0 gates
made masks, --keep_percent applied): `val_accuracy`, `val_loss`, `weights_kept` (% of the
prunable weights) and `score`, which weighs accuracy against sparsity:

    score = val_accuracy - kept_cost * weights_kept / 100
            - (1 + (weights_kept - max_weights_kept) / 100  if weights_kept > max_weights_kept)

so a trial over the `max_weights_kept` budget always ranks below one within it (and nearer
the budget ranks higher), and `kept_cost` trades accuracy for sparsity. `test_accuracy` is
reported too, but is not an objective: the test set must not choose hyperparameters.

Hyperband: one of its epochs is --eval_every iterations, and a trial of N epochs trains
N * eval_every iterations from initialisation (a sparsity schedule spans the whole training,
so it cannot continue a shorter trial's model).
"""
import dataclasses

import keras_tuner
import numpy as np

from tflth import distribute, engine, internals, pruning, runs
from tflth.failures import NonFiniteLoss, RunFailure
from tflth.arguments import is_integer
from tflth.lottery import paths as lottery_paths
from tflth.lottery import runner as lottery
from tflth.lottery.hparams import LotteryHparams
from tflth.trainer import runner as trainer
from tflth.tuning import space as space_module

METRICS = {"score": "max", "val_accuracy": "max", "val_loss": "min", "weights_kept": "min"}
"""The objectives a search can take, each with its direction."""
REPORTED = tuple(METRICS) + ("test_accuracy",)
"""What each trial reports (the test accuracy too, which no objective reads)."""


def objective(name):
    """The keras-tuner Objective of one of METRICS; ValueError naming it otherwise."""
    if name not in METRICS:
        hint = " (the test set must not choose hyperparameters)" if name == "test_accuracy" else ""
        raise ValueError(f"--objective={name!r} is not a metric of the trials{hint}; allowed: {', '.join(METRICS)}")
    return keras_tuner.Objective(name, METRICS[name])


def objective_names(obj):
    """The metric names a keras-tuner objective (one, several, or a MultiObjective) reads."""
    if isinstance(obj, (list, tuple)):
        return [n for o in obj for n in objective_names(o)]
    if hasattr(obj, "objectives"):  # keras_tuner's MultiObjective
        return objective_names(obj.objectives)
    return [obj if isinstance(obj, str) else obj.name]


class StoppedByFailure(keras_tuner.errors.FatalError):
    """A `tflth.failures.RunFailure` met in a trial (keras-tuner would record any other error as
    a failed trial and go on): `.failure` is it."""

    def __init__(self, failure):
        super().__init__(str(failure))
        self.failure = failure


def check_objective(obj):
    """ValueError unless every metric `obj` names is one of METRICS, optimised in its direction."""
    objectives = obj if isinstance(obj, (list, tuple)) else getattr(obj, "objectives", [obj])
    for o in objectives:
        name = objective_names(o)[0]
        objective(name)
        if getattr(o, "direction", METRICS[name]) != METRICS[name]:
            raise ValueError(f"objective {name!r} has direction {o.direction!r}; {name} is to "
                             f"{METRICS[name]}imise (use tflth.tuning.objective({name!r}))")


def score(val_accuracy, weights_kept, max_weights_kept=100.0, kept_cost=0.0):
    """The "score" objective: validation accuracy less `kept_cost` per 100% of weights kept,
    and less 1 (plus the excess) above `max_weights_kept`."""
    over = weights_kept - max_weights_kept
    return val_accuracy - kept_cost * weights_kept / 100.0 - (1.0 + over / 100.0 if over > 0 else 0.0)


def _tuner_checkpoint(callbacks):
    """(keras-tuner's checkpoint callback or None, the other callbacks). The checkpoint would
    save the epoch of best validation accuracy, which for a pruning schedule is a denser model
    than the trial's result: it is called once, on the final model, instead."""
    checkpoint = [c for c in callbacks if isinstance(c, internals.tuner_checkpoint_class())]
    return (checkpoint[0] if checkpoint else None), [c for c in callbacks if c not in checkpoint]


class SparseHyperModel(keras_tuner.HyperModel):
    """Trials of sparse training: `base` (TrainerHparams, or LotteryHparams with `levels`) with
    the ranges of `space` searched.

    Args:
      levels: lottery runs: the pruning levels each trial trains (its result is the last one's).
      seeds: each trial trains these seeds; its metrics are their means (the first seed's model
        is the trial's checkpoint and export).
      root: the folder of the run folders (shared with the other recipes: a trial is a run).
      data / data_dir: the training data as `tflth.runs.load_data` gives it, or where to find it.
      max_weights_kept, kept_cost: the `score`'s budget and price of weights (module docstring).
      train_kw: more arguments of `tflth.engine.train` (checkpoint_seconds, test_every_eval).
    """

    def __init__(self, base, space, *, levels=None, seeds=(0,), root="runs", data=None, data_dir=None,
                 max_weights_kept=100.0, kept_cost=0.0, verbose=True, name="tflth_sparse", **train_kw):
        super().__init__(name=name)
        self.lottery = isinstance(base, LotteryHparams)
        if self.lottery and not (is_integer(levels) and levels >= 1):
            raise ValueError(f"--levels={levels}: a lottery search needs the pruning levels each trial trains (>= 1)")
        if not self.lottery and levels is not None:
            raise ValueError(f"--levels={levels}: only lottery runs have levels")
        self.base, self.space, self.levels, self.seeds, self.root = base, list(space), levels, tuple(seeds), root
        space_module.check_sparsity(space, type(base))
        space_module.check(space, base, run_check=self._check)
        if not 0 < max_weights_kept <= 100:
            raise ValueError(f"--max_weights_kept={max_weights_kept}: must be in (0, 100]")
        if not kept_cost >= 0:
            raise ValueError(f"--kept_cost={kept_cost}: must be >= 0")
        if not seeds or min(seeds) < 0:
            raise ValueError(f"--seeds={seeds}: give one or more integers >= 0")
        self.data, self.data_dir, self.verbose, self.train_kw = data, data_dir, verbose, train_kw
        self.max_weights_kept, self.kept_cost = max_weights_kept, kept_cost

    def declare_hyperparameters(self, hp):
        for r in self.space:
            r.declare(hp)

    def hparams(self, hp):
        """The TrainerHparams of a trial (keras_tuner.errors.FailedTrialError if its values make an
        invalid run: the search goes on with the next trial)."""
        values = {r.name: r.declare(hp) for r in self.space}
        try:
            hparams = space_module.apply(self.base, values)
            if "tuner/epochs" in hp.values:  # Hyperband's budget: one epoch = eval_every iterations
                t = hparams.training
                hparams = dataclasses.replace(hparams, training=dataclasses.replace(
                    t, iterations=hp.values["tuner/epochs"] * t.eval_every))
        except ValueError as e:
            raise keras_tuner.errors.FailedTrialError(f"{values}: {e}") from None
        return hparams

    def run_dir(self, hp):
        hparams = self.hparams(hp)
        return lottery_paths.run_dir(self.root, hparams) if self.lottery else trainer.run_dir(self.root, hparams)

    def build(self, hp):
        return (lottery if self.lottery else trainer).build_model(self.hparams(hp), self.seeds[0])

    def _check(self, hparams, root=None):
        if self.lottery:
            lottery.check_run_args(hparams, self.levels, (), root=root)
        else:
            trainer.check_run_args(hparams, root)

    def _train(self, hparams, seed, callbacks):
        """Trains (or resumes, or skips) one seed of the trial; returns the folder of its model."""
        if self.lottery:
            run = lottery.run(hparams, levels=self.levels, seeds=(seed,), controls=(), root=self.root,
                              data=self.data, verbose=self.verbose, callbacks=callbacks, **self.train_kw)
            return lottery_paths.branch_dir(lottery_paths.replicate_dir(run, seed), self.levels, "main")
        folder = runs.prepare_run_dir(trainer.run_dir(self.root, hparams), hparams, trainer.FORMAT)
        trainer.train_seed(hparams, folder, seed, self.data, self.verbose, extra_callbacks=callbacks, **self.train_kw)
        return trainer.seed_dir(folder, seed)

    def _load(self, model, hparams, folder):
        if self.lottery:
            runs.load_final_weights(model, folder)
        else:
            trainer.load_final(model, hparams, folder)

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        """Trains (or resumes, or reads) the trial's run; returns its metrics (REPORTED). A trial
        whose loss diverges is a failed trial (FailedTrialError: the search goes on); any other
        `tflth.failures.RunFailure` (a damaged file, a busy folder, a full disk) stops the search
        (StoppedByFailure), which keras-tuner would otherwise record as a failed trial too."""
        try:
            return self._fit(hp, model, *args, callbacks=callbacks, **kwargs)
        except NonFiniteLoss as e:
            raise keras_tuner.errors.FailedTrialError(str(e)) from None
        except RunFailure as e:
            raise StoppedByFailure(e) from e

    def _fit(self, hp, model, *args, callbacks=(), **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("epochs", "initial_epoch", "verbose")}
        if args or kwargs:
            raise keras_tuner.errors.FatalValueError(
                f"SparseHyperModel trains on its hparams' dataset: call search() without data or fit arguments "
                f"(got {len(args)} positional and {', '.join(kwargs) or 'no'} keyword arguments)")
        checkpoint, callbacks = _tuner_checkpoint(list(callbacks))
        if checkpoint is not None:
            try:
                check_objective(checkpoint.objective)
            except ValueError as e:
                raise keras_tuner.errors.FatalValueError(str(e)) from None
        hparams = self.hparams(hp)
        try:  # what only a built model can tell (a score the layers lack, a schedule past the end)
            self._check(hparams)
        except ValueError as e:
            raise keras_tuner.errors.FailedTrialError(str(e)) from None
        # keras-tuner builds the model under its `distribution_strategy` but fits outside it:
        # the runs train under the model's strategy.
        strategy = model.distribute_strategy
        try:  # the same for every trial: the search stops
            distribute.check_batch_size(hparams.dataset.batch_size, strategy)
            runs.check_run_dir(self.run_dir(hp), hparams, (lottery if self.lottery else trainer).FORMAT)
        except ValueError as e:
            raise keras_tuner.errors.FatalValueError(str(e)) from None
        if self.data is None:
            self.data = runs.load_data(hparams, self.data_dir)
        if self.verbose:
            print(f"[tune] trial {dict((r.name, hp.values[r.name]) for r in self.space)}: {self.run_dir(hp)}",
                  flush=True)
        with strategy.scope():
            folders = [self._train(hparams, seed, callbacks) for seed in self.seeds]
            per_seed = [self.measure(model, hparams, folder) for folder in folders]
            if len(folders) > 1:  # the first seed's model is the trial's
                self._load(model, hparams, folders[0])
        results = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}
        results["score"] = score(results["val_accuracy"], results["weights_kept"], self.max_weights_kept,
                                 self.kept_cost)
        if checkpoint is not None:
            checkpoint.set_model(model)
            checkpoint.on_epoch_end(0, logs=results)
        return results

    def measure(self, model, hparams, folder):
        """The metrics of a finished seed, measured on its final model loaded into `model`."""
        self._load(model, hparams, folder)
        engine.compile_model(model, hparams.training, 1)
        val, test = engine.evaluate(model, self.data["validation"]), engine.evaluate(model, self.data["test"])
        return {"val_accuracy": val["accuracy"], "val_loss": val["loss"], "test_accuracy": test["accuracy"],
                "weights_kept": 100.0 * (1.0 - pruning.sparsity(model)["total"])}
