"""The lottery-ticket driver: train, prune, rewind, repeat (Frankle & Carbin 2019).

Iterations 0..k are trained once (the rewind point; nothing when k = 0). Then every level
trains iterations k..T from there: level 0 the dense network, level L >= 1 the
(1 - fraction) of the weights that survived level L - 1, and the control branches on the
same masks, so all of them follow one protocol (as open_lth with --rewinding_steps). Every
stage whose outputs exist is skipped, so rerunning the same command resumes a killed run.
All training goes through `tflth.engine.train`.
"""
import contextlib
import os

import numpy as np

from tflth import engine, io, pruning, runs
from tflth.lottery import branches as br
from tflth.lottery import paths


load_data = runs.load_data


def build_model(hparams, seed, dataset_size=None):
    """The architecture, freshly initialised from `seed` (penalties of families like L0 scaled by
    `dataset_size` training examples; default: the dataset's training-set size)."""
    return runs.build_model(hparams, hparams.model.model, hparams.model.family, seed, dataset_size)


# The layout of a run folder's files, checked on resume (a folder of another layout cannot be
# resumed): 2 = init.npz, rewind.npz and pretrain/ per replicate; 1 = a folder whose hparams.json
# has no "format" (rewind weights in .weights.h5 files or .npz states under level_0/main).
FORMAT = 2


def check_run_dir(hparams, root):
    """Raises ValueError if the run folder exists with other hyperparameters or another format."""
    return runs.check_run_dir(paths.run_dir(root, hparams), hparams, FORMAT)


def prepare_run_dir(hparams, root):
    """Creates the run folder with its hyperparameters (checked if it already exists)."""
    return runs.prepare_run_dir(paths.run_dir(root, hparams), hparams, FORMAT)


def _prune_args(hparams):
    p = hparams.pruning
    return dict(fraction=p.fraction, score=p.score, scope=p.scope, rates=p.rates, exclude=p.excluded)


class Replicate:
    """One seed of a run: its levels and branches, each trained at most once.

    `train_kw` goes to `tflth.engine.train` (checkpoint_seconds, test_every_eval).
    """

    def __init__(self, hparams, run, seed, data, verbose=True, **train_kw):
        self.hparams, self.seed, self.data, self.verbose, self.train_kw = hparams, seed, data, verbose, train_kw
        self.dir = paths.replicate_dir(run, seed)
        self.model = build_model(hparams, seed, len(data["y"]))
        self.init = self.model.get_weights()  # iteration 0, masks all ones
        t, k = hparams.training, hparams.pruning.rewind_iteration
        self.steps_per_execution = engine.steps_per_execution(*(n for n in (t.eval_every, t.iterations, k) if n))
        self.compiled_offset = None

    def run(self, levels, controls=br.CONTROLS, control_levels=None):
        """Levels 0..levels of the ticket, each followed by its controls, holding the replicate's
        folder (`runs.claim`: RunBusy if another process does)."""
        with runs.claim(self.dir):
            for level, branch in tasks(levels, controls, control_levels):
                self.branch(level, branch)

    def branch(self, level, branch):
        folder = paths.branch_dir(self.dir, level, branch)
        if os.path.exists(paths.metrics(folder)):
            return io.read_json(paths.metrics(folder))
        if level > 0 and not os.path.exists(paths.metrics(paths.branch_dir(self.dir, level - 1, "main"))):
            self.branch(level - 1, "main")  # the level's masks come from the previous ticket
        self.rewind_point()
        label = f"seed {self.seed} level {level} {branch}"
        k, policy = self.hparams.pruning.rewind_iteration, self.hparams.pruning.optimizer_state
        model = self.model
        model.set_weights(self.init)
        self._compile(offset=k if policy == "fresh" else 0)
        masks = br.prepare(branch, model, self.dir, level, self.seed, policy,
                           self.hparams.pruning.rewind_weights)
        if self.verbose:
            print(f"[{label}] {100 * (1 - pruning.sparsity(model)['total']):.1f}% of weights remain; "
                  f"training iterations {k}..{self.hparams.training.iterations}", flush=True)
        clock, timing = engine.Clock.resume(folder), {}  # a resumed branch's cost counts the earlier part
        rows = engine.train(model, self.data, self.hparams, folder, start=k, seed=self.seed, label=label,
                            verbose=self.verbose, timing=timing, **self.train_kw)
        spent = clock.spent()
        with engine.timed(timing, "final"):
            weights_sha256 = io.save_weights(model, paths.final_weights(folder))
            io.write_masks(paths.branch_masks(folder), masks)
            sparsity = pruning.sparsity(model)
            metrics = {"level": level, "branch": branch,
                       **runs.training_metrics(model, self.data, self.seed, rows, k, spent, timing),
                       "weights_remaining": 100 * (1 - sparsity["total"]), "sparsity": sparsity,
                       "mask_overlap_prev": None, "movement": None, "weights_sha256": weights_sha256}
            if level > 0:
                previous = paths.read_level_masks(self.dir, level - 1)
                metrics["mask_overlap_prev"] = br.overlap(masks, previous)
            if branch == "main":
                metrics["movement"] = self._prune_next_level(level, masks)
        io.write_json(paths.metrics(folder), metrics)
        runs.remove_checkpoint(folder)
        return metrics

    def rewind_point(self):
        """Saves the initialisation (init.npz) and the weights and optimizer state at iteration
        k (rewind.npz, written last), training iterations 0..k once for k > 0 (pretrain/).
        Level 0's masks (all ones) are written here too."""
        if os.path.exists(paths.rewind_state(self.dir)):
            return
        k, model = self.hparams.pruning.rewind_iteration, self.model
        model.set_weights(self.init)
        self._compile(offset=0)
        io.write_masks(paths.level_masks(self.dir, 0), pruning.get_masks(model))
        engine.state.save(paths.init_state(self.dir), model, optimizer=False, masks=False)
        if k > 0:
            label = f"seed {self.seed} pretrain"
            if self.verbose:
                print(f"[{label}] training iterations 0..{k} (the rewind point)", flush=True)
            clock = engine.Clock.resume(paths.pretrain_dir(self.dir))
            rows = engine.train(model, self.data, self.hparams, paths.pretrain_dir(self.dir), stop=k,
                                seed=self.seed, label=label, verbose=self.verbose, **self.train_kw)
            io.write_json(paths.metrics(paths.pretrain_dir(self.dir)),
                          {"seed": self.seed, "rows": rows, **clock.spent(), **runs.training_cost(rows)})
        engine.state.save(paths.rewind_state(self.dir), model, masks=False)
        runs.remove_checkpoint(paths.pretrain_dir(self.dir))

    def _compile(self, offset):
        """A fresh optimizer whose step starts at 0, its schedule shifted to resume at `offset`.
        Compiling (and XLA) costs seconds: branches with the same offset reuse the compiled
        model and only get their optimizer reset."""
        if self.compiled_offset == offset:
            pruning.reset_optimizer(self.model)
        else:
            engine.compile_model(self.model, self.hparams.training, self.steps_per_execution, offset)
            self.compiled_offset = offset

    def _prune_next_level(self, level, masks):
        """Prunes the trained ticket into the next level's masks; returns how far the weights
        it keeps and removes moved from the rewind point (iteration k, where training starts)."""
        layers = pruning.prunable_layers(self.model)
        final = {layer.name: layer.kernel.numpy() for layer in layers}
        diverged = [name for name, kernel in final.items() if not np.isfinite(kernel).all()]
        if diverged:  # magnitude scores would keep the NaNs and carry them to every later level
            raise RuntimeError(f"seed {self.seed} level {level}: the trained weights of {diverged} are not "
                               "finite (training diverged); lower --lr or check the data")
        rewind = engine.state.load(paths.rewind_state(self.dir))
        start = {layer.name: rewind[engine.state.MODEL + layer.kernel.path] for layer in layers}
        next_masks = pruning.prune(self.model, **_prune_args(self.hparams), seed=self.seed + level)
        full = {**masks, **next_masks}
        io.write_masks(paths.level_masks(self.dir, level + 1), full)
        return br.movement(final, start, masks, full)


def tasks(levels, controls=br.CONTROLS, control_levels=None):
    """[(level, branch)] of one replicate in an order that respects dependencies: the ticket
    of each level, followed by its controls (at every level >= 1, or only at `control_levels`)."""
    out = []
    for level in range(levels + 1):
        out.append((level, "main"))
        if level > 0 and (control_levels is None or level in control_levels):
            out += [(level, branch) for branch in controls]
    return out


def check_run_args(hparams, levels, controls, workers=1, root=None, control_levels=None):
    """Everything that can be checked before data is read or a folder written."""
    if levels < 0:
        raise ValueError(f"--levels={levels}: must be >= 0")
    if control_levels and not all(1 <= level <= levels for level in control_levels):
        raise ValueError(f"--control_levels={','.join(map(str, control_levels))}: each must be a level in "
                         f"[1, --levels={levels}] (level 0 has no controls)")
    unknown = sorted(set(controls) - set(br.CONTROLS))
    if unknown:
        raise ValueError(f"branches {unknown} are unknown; allowed: {list(br.CONTROLS)}")
    if workers < 1:
        raise ValueError(f"--workers={workers}: must be >= 1")
    try:
        pruning.check_prune_args(build_model(hparams, 0), **_prune_args(hparams))
    except ValueError as e:
        if str(e).startswith("--"):  # names its flag already (--model)
            raise
        flag = "exclude" if "exclude" in str(e) else "family"
        raise ValueError(f"--{flag}={getattr(hparams.pruning if flag == 'exclude' else hparams.model, flag)!r}: "
                         f"{e}") from None
    if root is not None:
        check_run_dir(hparams, root)


def run(hparams, *, levels, seeds=(0,), controls=br.CONTROLS, control_levels=None, root="runs",
        data_dir=None, data=None, verbose=True, workers=1, **train_kw):
    """Runs (or resumes) a lottery-ticket experiment; returns the run folder.

    Arguments are checked and the data loaded before anything is written. With `workers` > 1
    the branches train in that many processes (seeds in parallel, and a level's controls
    beside the next level's ticket), each loading the data from `data_dir` itself; each file
    still has one writer. `train_kw` goes to `tflth.engine.train` (checkpoint_seconds,
    test_every_eval).
    """
    check_run_args(hparams, levels, controls, workers, root, control_levels)
    if workers > 1 and data is not None:
        raise ValueError("workers > 1: each worker loads the data from data_dir itself; pass data_dir, not data")
    if workers == 1:
        data = data or load_data(hparams, data_dir)
    run_folder = prepare_run_dir(hparams, root)
    if verbose:
        print(f"[tflth] run folder {run_folder}", flush=True)
    if workers == 1:
        for seed in seeds:
            Replicate(hparams, run_folder, seed, data, verbose, **train_kw).run(levels, controls, control_levels)
    else:
        from tflth.lottery import parallel
        todo = [(seed, level, branch) for seed in seeds for level, branch in tasks(levels, controls, control_levels)]
        with contextlib.ExitStack() as held:  # the workers train under this process's claims
            for seed in seeds:
                held.enter_context(runs.claim(paths.replicate_dir(run_folder, seed)))
            parallel.run_tasks(todo, workers, hparams, run_folder, data_dir, verbose, train_kw)
    return run_folder
