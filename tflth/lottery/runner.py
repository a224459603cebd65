"""The lottery-ticket driver: train, prune, rewind, repeat (Frankle & Carbin 2019).

Level 0 trains the dense network; level L >= 1 keeps (1 - fraction) of the weights
that survived level L - 1, rewinds them to iteration k and retrains. Control branches
run on the same masks. Every stage whose outputs exist is skipped, so rerunning the
same command resumes a killed run.
"""
import os
import time

import keras

from tflth import data as tdata
from tflth import io, models, pruning
from tflth.hparams import to_flagfile
from tflth.lottery import branches as br
from tflth.lottery import paths, training
from tflth.lottery.hparams import LotteryHparams


def load_data(hparams, data_dir=None):
    """The arrays a run needs; raises ValueError/RuntimeError before anything is written."""
    name, held_out = hparams.dataset.dataset, hparams.dataset.validation_size
    x, y = tdata.arrays(name, "train", data_dir=data_dir, validation_size=held_out)
    return {"x": x, "y": y,
            "validation": training.eval_stream(*tdata.arrays(name, "validation", data_dir=data_dir,
                                                             validation_size=held_out)),
            "test": training.eval_stream(*tdata.arrays(name, "test", data_dir=data_dir))}


def build_model(hparams, seed):
    """The architecture, freshly initialised from `seed`."""
    keras.utils.set_random_seed(seed)
    info = tdata.info(hparams.dataset.dataset)
    return models.get_model(hparams.model.model, family=hparams.model.family,
                            input_shape=info.input_shape, num_classes=info.num_classes)


def prepare_run_dir(hparams, root):
    """Creates the run folder with its hyperparameters (checked if it already exists)."""
    run = paths.run_dir(root, hparams)
    if os.path.exists(paths.hparams_file(run)):
        saved = LotteryHparams.from_dict(io.read_json(paths.hparams_file(run)))
        if saved != hparams:
            raise ValueError(f"{run} holds different hyperparameters; was a field renamed?")
    else:
        io.write_json(paths.hparams_file(run), hparams.to_dict())
        io.write_text(paths.flags_file(run), to_flagfile(hparams.sections))
    return run


class Replicate:
    """One seed of a run: its levels and branches, each trained at most once."""

    def __init__(self, hparams, run, seed, data, verbose=True):
        self.hparams, self.seed, self.data, self.verbose = hparams, seed, data, verbose
        self.dir = paths.replicate_dir(run, seed)
        self.model = build_model(hparams, seed)
        self.init = self.model.get_weights()  # iteration 0, masks all ones
        self.steps_per_execution = training.steps_per_execution(hparams)

    def run(self, levels, controls=br.CONTROLS, control_levels=None):
        """Levels 0..levels of the ticket, each followed by its controls
        (at every level >= 1, or only at `control_levels`)."""
        for level in range(levels + 1):
            self.branch(level, "main")
            if level > 0 and (control_levels is None or level in control_levels):
                for branch in controls:
                    self.branch(level, branch)

    def branch(self, level, branch):
        folder = paths.branch_dir(self.dir, level, branch)
        if os.path.exists(paths.metrics(folder)):
            return io.read_json(paths.metrics(folder))
        label = f"seed {self.seed} level {level} {branch}"
        if level > 0 and not os.path.exists(paths.metrics(paths.branch_dir(self.dir, level - 1, "main"))):
            self.branch(level - 1, "main")  # the level's masks come from the previous ticket
        model = self.model
        model.set_weights(self.init)
        training.compile_model(model, self.hparams.training, self.steps_per_execution)
        k = self.hparams.pruning.rewind_iteration
        if level == 0:
            masks = pruning.get_masks(model)
            io.write_npz(paths.level_masks(self.dir, 0), masks)
            start, on_step = 0, self._save_init_and_rewind
        else:
            masks = br.prepare(branch, model, self.dir, level, self.seed)
            start, on_step = k, None
            model.optimizer.iterations.assign(k)  # the learning-rate schedule resumes at k
        if self.verbose:
            print(f"[{label}] {100 * (1 - pruning.sparsity(model)['total']):.1f}% of weights remain; "
                  f"training iterations {start}..{self.hparams.training.iterations}", flush=True)
        started = time.time()
        rows = training.train_branch(model, self.data, self.hparams, folder, start=start, seed=self.seed,
                                     label=label, on_step=on_step, verbose=self.verbose)
        io.save_weights(model, paths.final_weights(folder))
        io.write_npz(paths.branch_masks(folder), masks)
        sparsity = pruning.sparsity(model)
        metrics = {"level": level, "branch": branch, "seed": self.seed, "rows": rows,
                   "weights_remaining": 100 * (1 - sparsity["total"]), "sparsity": sparsity,
                   "mask_overlap_prev": None, "movement": None, "seconds": time.time() - started,
                   **training.summarize_rows(rows, start)}
        if level > 0:
            previous = io.read_npz(paths.level_masks(self.dir, level - 1))
            metrics["mask_overlap_prev"] = br.overlap(masks, previous)
        if branch == "main":
            metrics["movement"] = self._prune_next_level(level, masks)
        io.write_json(paths.metrics(folder), metrics)
        if os.path.exists(paths.progress(folder)):
            os.remove(paths.progress(folder))
        return metrics

    def _save_init_and_rewind(self, step):
        if step == 0:
            io.save_weights(self.model, paths.init_weights(self.dir))
        if step == self.hparams.pruning.rewind_iteration:
            io.save_weights(self.model, paths.rewind_weights(self.dir))

    def _prune_next_level(self, level, masks):
        """Prunes the trained ticket into the next level's masks; returns how far the
        weights it keeps and removes moved from their initial values."""
        p = self.hparams.pruning
        layers = pruning.prunable_layers(self.model)
        final = {layer.name: layer.kernel.numpy() for layer in layers}
        init = dict(zip([v.path for v in self.model.weights], self.init))
        init = {layer.name: init[layer._kernel.path] for layer in layers}
        next_masks = pruning.prune(self.model, p.fraction, score=p.score, scope=p.scope, rates=p.rates,
                                   seed=self.seed + level)
        full = {**masks, **next_masks}
        io.write_npz(paths.level_masks(self.dir, level + 1), full)
        return br.movement(final, init, masks, full)


def check_run_args(levels, controls):
    if levels < 0:
        raise ValueError(f"levels={levels}: must be >= 0")
    unknown = sorted(set(controls) - set(br.CONTROLS))
    if unknown:
        raise ValueError(f"branches {unknown} are unknown; allowed: {list(br.CONTROLS)}")


def run(hparams, *, levels, seeds=(0,), controls=br.CONTROLS, control_levels=None, root="runs",
        data_dir=None, data=None, verbose=True):
    """Runs (or resumes) a lottery-ticket experiment; returns the run folder.

    Arguments are checked and the data loaded before anything is written.
    """
    check_run_args(levels, controls)
    data = data or load_data(hparams, data_dir)
    run_folder = prepare_run_dir(hparams, root)
    if verbose:
        print(f"[tflth] run folder {run_folder}", flush=True)
    for seed in seeds:
        Replicate(hparams, run_folder, seed, data, verbose).run(levels, controls, control_levels)
    return run_folder
