"""Sparse training, one model per seed, through the one engine (`tflth.engine.train`).

    <root>/sparse_<hash>/hparams.json, flags.txt
      seed_<s>/metrics.json          written last: the seed is done
               final.weights.h5      the trained weights (L0 gates turned into masks; before --keep_percent)
               progress.npz, tb/     resume point, TensorBoard

What each kind of model needs is its `tflth.trainer.kinds.Kind`'s (the runner branches on no family):
with --prior the layers are Bayesian (the family of --estimator), the loss is the negative ELBO
per example, and after training the calibration of the mean mode and of the Monte-Carlo
predictive distribution (--mc_samples) is measured on the test set; with --penalty=l0, L0 gates
closed at test time become masks after training. With --prune_score any family is pruned while
training (`tflth.pruning.PruneCallback`).

After training the remaining architecture is measured (`tflth.l0.architecture`, which reports
every family), and with --keep_percent the deployed weights are pruned by magnitude to that %
and tested again. Rerunning the same command skips finished seeds and resumes a killed one.
"""
import os

import numpy as np

from tflth import engine, io, l0, pruning, runs, schema
from tflth.trainer import kinds

FORMAT = 1


def run_dir(root, hparams):
    return runs.run_dir(root, schema.SPARSE, hparams)


def seed_dir(run, seed):
    return os.path.join(run, schema.SEED.format(seed))


def build_model(hparams, seed, n=None):
    """The model of `hparams` from `seed`, its penalties scaled by `n` training examples (default:
    the dataset's training-set size)."""
    n = n or runs.train_size(hparams)
    family, kw = kinds.kind_of(hparams.sparsity).layers(hparams.sparsity, n)
    try:
        return runs.build_model(hparams, hparams.model.model, family, seed, dataset_size=n, **kw)
    except ValueError as e:  # the flags were checked: what the layers refuse comes from --per_layer
        s = hparams.sparsity
        flag = "per_layer" if s.per_layer else "prior_args" if s.prior_args else "model"
        raise ValueError(f"--{flag}: {e}") from None


def apply_keep_percent(model, hparams):
    """--keep_percent: the deployed weights (L0 kernels times their gates) pruned by global
    magnitude to that % of all prunable weights; nothing if the model is already that sparse.
    It removes the fraction of the remaining weights that leaves that % (`pruning.prune`, whose
    rounding the finished runs were tested with: `prune_to` may keep one weight more)."""
    keep = hparams.sparsity.keep_percent
    remaining = 100.0 * (1.0 - pruning.sparsity(model)["total"])
    if keep and remaining > keep:
        pruning.prune(model, 1.0 - keep / remaining, score="magnitude", scope="global")


def prune_end(hparams):
    """--prune_end, or three quarters of --iterations."""
    return hparams.sparsity.prune_end or hparams.training.iterations * 3 // 4


def callback_steps(hparams):
    """The steps at which the callbacks act: Keras calls them only between executions, so
    `steps_per_execution` must divide these too (a pruning step inside an execution is late)."""
    s = hparams.sparsity
    steps = []
    if s.prune_score:
        steps += [s.prune_start, prune_end(hparams)] + ([] if s.prune_schedule == "oneshot" else [s.prune_every])
    if s.dst:
        steps += [s.dst_every]
    steps += kinds.kind_of(s).steps(s)
    return [step for step in steps if step]


def allocation_of(scope):
    """--prune_scope as a `tflth.pruning.prune_to` allocation (layerwise is uniform)."""
    return {"layerwise": "uniform"}.get(scope, scope)


def dst_end(hparams):
    """--dst_end, or three quarters of --iterations."""
    return hparams.sparsity.dst_end or hparams.training.iterations * 3 // 4


def batch_at(data, batch_size, seed):
    """step -> one (x, y) training batch drawn from (seed, step) alone (so a resumed run reads the
    same ones), for the scores and the growth that read the gradient (snip, taylor, RigL)."""
    def batch(step, size=batch_size):
        index = np.random.default_rng((seed, 7919, step)).choice(len(data["y"]), size, replace=False)
        return data["x"][index].astype(np.float32) / 255.0, data["y"][index]
    return batch


def callbacks(hparams, data=None, seed=0):
    """The Keras callbacks of pruning while training, dynamic sparsity and the KL warm-up;
    `data` ({"x", "y"}) gives the batches the gradient scores and RigL read."""
    s, batch_size = hparams.sparsity, hparams.dataset.batch_size
    out = kinds.kind_of(s).callbacks(s)
    batches = batch_at(data, batch_size, seed) if data is not None else None
    if s.prune_score:
        end = prune_end(hparams)
        if s.prune_to and s.prune_schedule == "oneshot":
            schedule = pruning.OneShot(s.prune_start, 1.0 - s.prune_to / 100.0)
        elif s.prune_to:
            schedule = pruning.PolynomialDecay(1.0 - s.prune_to / 100.0, s.prune_start, end, s.prune_every)
        else:
            schedule = pruning.Every(s.prune_every, start=s.prune_start, end=end + 1)
        # The pruner's own layerwise / global fractions unless a target needs sharing out (ERK,
        # overrides) or straight-through masks are chosen afresh each time.
        allocation = None
        if s.prune_scope == "erk" or s.prune_overrides or s.straight_through:
            allocation = allocation_of(s.prune_scope)
        score_args = {}
        if pruning.get_score(s.prune_score).per_model:  # gradient scores: --prune_batches batches of their own
            score_args = {"data": lambda step: [batches(step * s.prune_batches + i) for i in range(s.prune_batches)],
                          "batches": s.prune_batches}
        out.append(pruning.PruneCallback(schedule, score=s.prune_score,
                                         scope="layerwise" if s.prune_scope == "erk" else s.prune_scope,
                                         verbose=0, seed=seed, allocation=allocation, overrides=s.overrides_to or None,
                                         regrow=s.straight_through, score_args=score_args,
                                         threshold=float(s.prune_threshold) if s.prune_threshold else None))
    if s.dst == "set":
        out.append(pruning.SET(dst_end(hparams), every=s.dst_every, alpha=s.dst_alpha, seed=seed))
    elif s.dst == "rigl":
        out.append(pruning.RigL(dst_end(hparams), data=batches, every=s.dst_every, alpha=s.dst_alpha, seed=seed))
    return out


def _evaluate(model, data):
    result = model.evaluate(data["test"], verbose=0, return_dict=True)
    return result["accuracy"]


def train_seed(hparams, run, seed, data, verbose=True, extra_callbacks=(), **train_kw):
    """Trains (or resumes, or skips) one seed, holding its folder (`runs.claim`: RunBusy if
    another process does); returns its metrics. `extra_callbacks` join the run's own (a
    tuner's, a user's)."""
    folder = seed_dir(run, seed)
    if os.path.exists(runs.metrics_file(folder)):
        return io.read_json(runs.metrics_file(folder))
    with runs.claim(folder):
        return _train_seed(hparams, folder, seed, data, verbose, extra_callbacks, **train_kw)


def _train_seed(hparams, folder, seed, data, verbose, extra_callbacks, **train_kw):
    if os.path.exists(runs.metrics_file(folder)):  # the process that held it before may have finished it
        return io.read_json(runs.metrics_file(folder))
    t, s = hparams.training, hparams.sparsity
    model = build_model(hparams, seed, n=len(data["y"]))
    if s.straight_through:
        pruning.straight_through(model)
    engine.compile_model(model, t, engine.steps_per_execution(t.eval_every, t.iterations, *callback_steps(hparams)))
    kind = kinds.kind_of(s)
    label = f"{kind.label(s)} seed {seed}"
    clock, timing = engine.Clock.resume(folder), {}  # a resumed seed's cost counts the earlier part
    rows = engine.train(model, data, hparams, folder, seed=seed, label=label, verbose=verbose,
                        callbacks=[*callbacks(hparams, data, seed), *extra_callbacks], timing=timing, **train_kw)
    spent = clock.spent()
    if s.straight_through:
        pruning.straight_through(model, False)  # the kernel masked for good
    kind.finish(model)
    measured = {}
    if kind.measure:
        with engine.timed(timing, "predictive"):
            measured = kind.measure(model, data, s)
    with engine.timed(timing, "final"):
        arch = l0.architecture(model)
        metrics = {**dict.fromkeys(schema.METHOD), "penalty": s.penalty, "strength": s.strength,
                   "prior": s.prior, "prune_score": s.prune_score or None, **kind.method(s),
                   **runs.training_metrics(model, data, seed, rows, 0, spent, timing),
                   "weights_remaining": arch.weights_kept, "architecture": arch.to_dict(), "pruned": None,
                   "mask_weights_remaining": 100.0 * (1.0 - pruning.sparsity(model)["total"]), "calibration": None}
        taken = sorted(k for k in measured if metrics.get(k) is not None or k in ("pruned", "weights_sha256"))
        if taken:  # a kind adds its own keys, or fills those left None for it ("calibration")
            raise ValueError(f"kind {kind.name!r}: measure() returned {taken}, which the runner writes itself")
        metrics.update(measured)
        metrics["weights_sha256"] = io.save_weights(model, runs.final_weights(folder))  # before any pruning
        if hparams.sparsity.keep_percent:
            apply_keep_percent(model, hparams)
            pruned = l0.architecture(model)
            metrics["pruned"] = {"keep_percent": hparams.sparsity.keep_percent,
                                 "weights_remaining": pruned.weights_kept, "test_acc": _evaluate(model, data),
                                 "architecture": pruned.to_dict()}
    for line in kind.report(metrics) if verbose else ():
        print(f"[{label}] {line}", flush=True)
    if verbose:
        print(f"[{label}] {arch}\n[{label}] final test error {100 * (1 - rows[-1]['test_acc']):.2f}%"
              + (f"; pruned to {metrics['pruned']['weights_remaining']:.2f}% of weights: test error "
                 f"{100 * (1 - metrics['pruned']['test_acc']):.2f}%" if metrics["pruned"] else ""), flush=True)
    io.write_json(runs.metrics_file(folder), metrics)
    runs.remove_checkpoint(folder)
    return metrics


def load_final(model, hparams, folder):
    """Loads a finished seed's trained weights (`folder`: its seed folder) into `model` (built by
    `build_model`) and prunes them to --keep_percent as the run tested them."""
    runs.load_final_weights(model, folder)
    apply_keep_percent(model, hparams)


def check_run_args(hparams, root=None):
    """Everything that can be checked before data is read or a folder written."""
    s, iterations = hparams.sparsity, hparams.training.iterations
    if s.prune_score and not s.prune_start < prune_end(hparams) < iterations:
        flag, value = ("prune_end", s.prune_end) if s.prune_end else ("prune_start", s.prune_start)
        raise ValueError(f"--{flag}={value}: pruning runs from --prune_start={s.prune_start} to --prune_end="
                         f"{prune_end(hparams)} (0: three quarters of --iterations), which must be later and "
                         f"before --iterations={iterations} (the last step trained)")
    if s.dst and not s.dst_every < dst_end(hparams) <= iterations:
        raise ValueError(f"--dst_every={s.dst_every}: rewiring runs every --dst_every iterations until --dst_end="
                         f"{dst_end(hparams)} (0: three quarters of --iterations), which must be later and "
                         f"<= --iterations={iterations}")
    model = build_model(hparams, 0)
    score = hparams.sparsity.prune_score
    try:  # a score the layers cannot give would fail at the first pruning step, mid-training
        per_layer = score and not getattr(pruning.get_score(score), "per_model", False)
        for layer in pruning.prunable_layers(model) if per_layer else ():
            pruning.get_score(score)(layer)
    except ValueError as e:
        raise ValueError(f"--prune_score={score}: {e}") from None
    if s.prune_to:  # overrides that name no layer, or leave the target out of reach
        layers = pruning.prunable_layers(model)
        try:
            fixed = pruning.allocation.resolve_overrides([layer.name for layer in layers], pruning.layer_roles(model),
                                                         s.overrides_to)
            pruning.allocate({layer.name: tuple(layer.kernel.shape) for layer in layers}, 1.0 - s.prune_to / 100.0,
                             allocation_of(s.prune_scope), fixed)
        except ValueError as e:
            flag, value = ("prune_overrides", s.prune_overrides) if s.prune_overrides else ("prune_to", s.prune_to)
            raise ValueError(f"--{flag}={value}: {e}") from None
    if root is not None:
        runs.check_run_dir(run_dir(root, hparams), hparams, FORMAT)


def run(hparams, *, seeds=(0,), root="runs", data_dir=None, data=None, verbose=True, **train_kw):
    """Runs (or resumes) every seed of one sparse-training configuration; returns the run folder.
    `train_kw` goes to `tflth.engine.train` (checkpoint_seconds, test_every_eval)."""
    check_run_args(hparams, root)
    data = data or runs.load_data(hparams, data_dir)
    folder = runs.prepare_run_dir(run_dir(root, hparams), hparams, FORMAT)
    if verbose:
        print(f"[tflth] run folder {folder}", flush=True)
    for seed in seeds:
        train_seed(hparams, folder, seed, data, verbose, **train_kw)
    return folder
