"""A keras-tuner search over sparsity hyperparameters as a resumable run (`recipes/tune.py`).

    <root>/tune_<hash>/hparams.json, flags.txt   the base run and the search (SearchHparams)
                      tuner/                      keras-tuner's project (oracle, trials, checkpoints)
                      trials.json, trials.md, trials.png   every trial: values, metrics, run folder
                      best/                       the best trial's model, exported (tflth.export)
    <root>/sparse_<hash>/                         one run folder per trial (tflth.trainer), or
    <root>/lottery_<hash>/                        for a lottery search (`recipes/tune_lottery.py`)

The folder is named by the hash of the base hyperparameters and the search (not --max_trials):
rerunning the command reloads the tuner (keras-tuner's overwrite=False), retries the trial
that was interrupted, which resumes from its run's checkpoint, and goes on to --max_trials.
"""
import dataclasses
import math
import os

import keras_tuner

from tflth import data as tdata
from tflth import io, runs
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.export import from_run, saving
from tflth.hparams import Sections, check_numbers, fail, field, one_of
from tflth.lottery import hparams as lottery_hparams
from tflth.lottery.hparams import LotteryHparams
from tflth.trainer.hparams import ModelHparams, SparsityHparams, TrainerHparams
from tflth.tuning import space as space_module
from tflth.tuning.hypermodel import METRICS, REPORTED, SparseHyperModel, objective

FORMAT = 1
TUNERS = {"random": keras_tuner.RandomSearch, "bayesian": keras_tuner.BayesianOptimization,
          "hyperband": keras_tuner.Hyperband}
EXPORTS = ("compact", "sparse", "dense", "none")
CHECK_EXAMPLES = 256


@dataclasses.dataclass(frozen=True)
class SearchHparams:
    """The search itself: the ranges (--search), the tuner, its objective and budget."""
    search: str = field("", "Comma-separated ranges name=kind:arguments over the flags of the base run, e.g. "
                            "'prune_to=log:1:20,prune_start=int:0:20000:2500,lr=log:3e-4:3e-3' or, with --prior, "
                            "'prior_args.global_scale=log:1e-6:1e-3' (kinds: float, log, int, choice; see "
                            "tflth/tuning/space.py). Empty: the sparsity hyperparameters of the base run's family "
                            "(tflth.tuning.space.default_space).")
    tuner: str = field("random", "random, bayesian (Gaussian-process Bayesian optimisation) or hyperband.")
    objective: str = field("score", "What the tuner optimises: " + ", ".join(METRICS) + " (score = val_accuracy "
                                    "- kept_cost * weights_kept / 100, below every trial within "
                                    "--max_weights_kept if over it).")
    max_weights_kept: float = field(100.0, "score: the budget, % of prunable weights a trial may keep.")
    kept_cost: float = field(0.0, "score: validation accuracy given up per 100% of weights kept.")
    tuner_seed: int = field(1, "Seed of the tuner's sampling (>= 1: keras-tuner would take 0 as 'draw a random "
                               "seed', and the search could not be repeated or resumed).")
    max_epochs: int = field(0, "hyperband: the longest trial in epochs of --eval_every iterations "
                               "(0: --iterations / --eval_every).")
    factor: int = field(3, "hyperband: the reduction factor between rounds.")
    levels: int = field(0, "Lottery searches (tflth tune_lottery): the pruning levels each trial trains; "
                           "its model is the last level's ticket.")

    def __post_init__(self):
        check_numbers(self)
        one_of("tuner", self.tuner, tuple(TUNERS))
        objective(self.objective)
        if not 0 < self.max_weights_kept <= 100:
            fail("max_weights_kept", self.max_weights_kept, "must be in (0, 100]")
        if not self.kept_cost >= 0:
            fail("kept_cost", self.kept_cost, "must be >= 0")
        if self.tuner_seed < 1:
            fail("tuner_seed", self.tuner_seed, "must be >= 1 (keras-tuner takes 0 as 'draw a random seed')")
        if self.max_epochs < 0:
            fail("max_epochs", self.max_epochs, "must be >= 0 (0: --iterations / --eval_every)")
        if self.factor < 2:
            fail("factor", self.factor, "must be >= 2")
        if self.tuner != "hyperband":
            for name in ("max_epochs", "factor"):
                if getattr(self, name) != SearchHparams.__dataclass_fields__[name].default:
                    fail(name, getattr(self, name), "applies to --tuner=hyperband only")

    def ranges(self, cls):
        """--search as Ranges over a run of `cls` ([] when empty)."""
        texts = [part for part in self.search.split(",") if part.strip()]
        return space_module.parse_space(texts, cls) if texts else []


@dataclasses.dataclass(frozen=True)
class TuneHparams(Sections):
    """The base run every trial starts from, and the search."""
    dataset: DatasetHparams = dataclasses.field(default_factory=DatasetHparams)
    model: ModelHparams = dataclasses.field(default_factory=ModelHparams)
    training: TrainingHparams = dataclasses.field(default_factory=TrainingHparams)
    sparsity: SparsityHparams = dataclasses.field(default_factory=SparsityHparams)
    search: SearchHparams = dataclasses.field(default_factory=SearchHparams)

    def __post_init__(self):
        self.search.ranges(TrainerHparams)  # checks --search against the base run's flags
        if self.search.levels:
            fail("levels", self.search.levels, "only lottery searches (tflth tune_lottery) have levels")

    @property
    def base(self):
        return TrainerHparams(self.dataset, self.model, self.training, self.sparsity)

    @property
    def space(self):
        """--search, or the default ranges of the base run's family."""
        return self.search.ranges(type(self.base)) or space_module.default_space(self.base)


@dataclasses.dataclass(frozen=True)
class LotteryTuneHparams(Sections):
    """A search whose trials are lottery runs of `search.levels` levels (no control branches)."""
    dataset: DatasetHparams = dataclasses.field(default_factory=DatasetHparams)
    model: lottery_hparams.ModelHparams = dataclasses.field(default_factory=lottery_hparams.ModelHparams)
    training: TrainingHparams = dataclasses.field(default_factory=TrainingHparams)
    pruning: lottery_hparams.PruningHparams = dataclasses.field(default_factory=lottery_hparams.PruningHparams)
    search: SearchHparams = dataclasses.field(default_factory=SearchHparams)

    def __post_init__(self):
        self.search.ranges(LotteryHparams)
        if self.search.levels < 1:
            fail("levels", self.search.levels, "a lottery search needs the pruning levels each trial trains (>= 1)")

    @property
    def base(self):
        return LotteryHparams(self.dataset, self.model, self.training, self.pruning)

    space = TuneHparams.space


SECTIONS = (DatasetHparams, ModelHparams, TrainingHparams, SparsityHparams, SearchHparams)
LOTTERY_SECTIONS = (*lottery_hparams.SECTIONS, SearchHparams)


def search_dir(root, hparams):
    return runs.run_dir(root, "tune", hparams)


def hypermodel(hparams, base=None, **kw):
    s = hparams.search
    return SparseHyperModel(base or hparams.base, hparams.space, levels=s.levels or None,
                            max_weights_kept=s.max_weights_kept, kept_cost=s.kept_cost, **kw)


def max_epochs(hparams):
    t = hparams.training
    return hparams.search.max_epochs or max(1, t.iterations // t.eval_every)


def hyperband_budgets(hparams):
    """(shortest, longest) trial of a Hyperband search, in epochs (keras-tuner's brackets: the
    longest divided by `factor` until below one)."""
    longest, factor = max_epochs(hparams), hparams.search.factor
    brackets = 1 + int(math.floor(math.log(longest, factor) + 1e-9))
    return math.ceil(longest / factor ** (brackets - 1)), longest


def make_tuner(hparams, model, folder, max_trials, distribution_strategy=None):
    """The keras-tuner tuner of `hparams.search` over `model` (a SparseHyperModel), its project in
    `folder`/tuner, reloaded if it exists."""
    s = hparams.search
    kw = dict(objective=objective(s.objective), seed=s.tuner_seed, directory=folder, project_name="tuner",
              overwrite=False, distribution_strategy=distribution_strategy)
    if s.tuner == "hyperband":
        kw.update(max_epochs=max_epochs(hparams), factor=s.factor)
    else:
        kw.update(max_trials=max_trials)
    return TUNERS[s.tuner](model, **kw)


def _best(tuner, ordered):
    """The id of the best finished trial, the earliest of equals (keras-tuner's own order of ties
    changes when it reloads)."""
    done = [t for t in ordered if t.status == "COMPLETED" and t.score is not None]
    sign = -1 if tuner.oracle.objective.direction == "max" else 1
    return min(done, key=lambda t: sign * t.score).trial_id if done else None


def trials(tuner, model):
    """One row per trial, in order: {trial, status, values, metrics, run_dir, best}."""
    ordered = sorted(tuner.oracle.trials.values(), key=lambda t: (len(t.trial_id), t.trial_id))
    best = _best(tuner, ordered)
    names = [r.name for r in model.space]
    rows = []
    for trial in ordered:
        hp = trial.hyperparameters
        values = {n: hp.values[n] for n in names if n in hp.values}
        if "tuner/epochs" in hp.values:
            values["epochs"] = hp.values["tuner/epochs"]
        try:
            folder = model.run_dir(hp)
        except keras_tuner.errors.FailedTrialError:
            folder = None
        metrics = {m: float(trial.metrics.get_last_value(m)) for m in REPORTED if trial.metrics.exists(m)}
        rows.append({"trial": trial.trial_id, "status": trial.status, "values": values, "metrics": metrics,
                     "run_dir": folder, "best": trial.trial_id == best})
    return rows


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(rows, title=None):
    """Markdown: every trial's values and metrics (accuracies and % kept in %), the best in bold."""
    names = list(dict.fromkeys(n for r in rows for n in r["values"]))
    head = ["Trial", *names, "val acc %", "weights kept %", "score", "test acc %", "status"]
    lines = ([f"# {title}", ""] if title else []) + ["| " + " | ".join(head) + " |",
                                                     "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for r in rows:
        m = r["metrics"]
        def pct(key):
            return f"{100 * m[key]:.2f}" if key in m else "—"
        cells = [r["trial"] + (" **best**" if r["best"] else ""), *(_number(r["values"].get(n, "—")) for n in names),
                 pct("val_accuracy"), f"{m['weights_kept']:.2f}" if "weights_kept" in m else "—",
                 f"{m['score']:.4f}" if "score" in m else "—", pct("test_accuracy"), r["status"].lower()]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Metrics of each trial's final model (as exported): validation accuracy, % of prunable weights "
              "kept, the score (tflth/tuning/hypermodel.py) and test accuracy (reported only; the search never "
              "reads it)."]
    return "\n".join(lines) + "\n"


def plot(rows, path, title=None):
    """Validation accuracy against % of weights kept, one point per finished trial, the best starred."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = [r for r in rows if {"val_accuracy", "weights_kept"} <= set(r["metrics"])]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in done:
        x, y = r["metrics"]["weights_kept"], 100 * r["metrics"]["val_accuracy"]
        ax.plot(x, y, "*" if r["best"] else "o", color="C3" if r["best"] else "C0", markersize=14 if r["best"] else 7)
        ax.annotate(r["trial"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    kept = [r["metrics"]["weights_kept"] for r in done]
    if kept and min(kept) > 0 and max(kept) / min(kept) > 5:
        ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("% of weights kept")
    ax.set_ylabel("validation accuracy %")
    ax.set_title(title or "trials")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write(rows, folder, title=None):
    """trials.json, trials.md and trials.png in `folder`; returns the table."""
    io.write_json(os.path.join(folder, "trials.json"), {"trials": rows})
    text = table(rows, title)
    io.write_text(os.path.join(folder, "trials.md"), text)
    plot(rows, os.path.join(folder, "trials.png"), title)
    return text


def export_best(rows, model, path, format, data_dir=None):
    """Exports the best trial's model (its first seed) with `tflth.export` to `path`, checked against
    the model; returns the report with both test accuracies, or None if no trial finished."""
    best = [r for r in rows if r["best"] and r["run_dir"]]
    if not best:
        return None
    trained, hparams, what = from_run.load(best[0]["run_dir"], model.seeds[0], level=model.levels)
    x, y = tdata.arrays(hparams.dataset.dataset, "test", data_dir=data_dir)
    x = x.astype("float32") / 255.0  # as the engine feeds it
    report = saving.save_sparse(trained, path, format, overwrite=True, sample=x[:CHECK_EXAMPLES])
    measured = {"trial": best[0]["trial"], "what": what,
                "test_accuracy": saving.accuracy(saving.saved_model_predictor(path), x, y),
                "model_test_accuracy": saving.accuracy(lambda b: trained.predict(b, verbose=0), x, y)}
    saving.add_to_report(path, **measured)
    return {**report, **measured}


def _seeds_file(folder):
    return os.path.join(folder, "seeds.json")


def check(hparams, root, seeds=(0,)):
    """Everything checkable before data is read or a folder written: the base run, every corner
    of the space (for Hyperband at its shortest and longest trials), the seeds of a search
    already begun."""
    hypermodel(hparams, root=root, seeds=seeds)
    if hparams.search.tuner == "hyperband":
        for epochs in hyperband_budgets(hparams):
            t = hparams.training
            try:  # the shortened base run itself may be invalid (a lottery run's rewind_iteration)
                short = dataclasses.replace(t, iterations=epochs * t.eval_every)
                base = dataclasses.replace(hparams.base, training=short)
                hypermodel(hparams, base, root=root, seeds=seeds)
            except ValueError as e:
                raise ValueError(f"--tuner=hyperband: its trials of {epochs} epochs ({epochs * t.eval_every} "
                                 f"iterations; settings in iterations are not rescaled): {e}") from None
    folder = search_dir(root, hparams)
    runs.check_run_dir(folder, hparams, FORMAT)
    if os.path.exists(_seeds_file(folder)) and tuple(io.read_json(_seeds_file(folder))) != tuple(seeds):
        raise ValueError(f"--seeds={','.join(map(str, seeds))}: {folder} is a search over seeds "
                         f"{','.join(map(str, io.read_json(_seeds_file(folder))))}; give those, or another --root")


def title(hparams):
    return f"{hparams.model.model} on {hparams.dataset.dataset}: {hparams.search.tuner} search"


def run(hparams, *, max_trials=10, seeds=(0,), root="runs", data=None, data_dir=None, export="compact",
        distribution_strategy=None, verbose=True, **train_kw):
    """Runs (or resumes) the search, writes the trials table (`write`) and exports the best.
    Returns (folder, rows, export report or None)."""
    if max_trials < 1:
        raise ValueError(f"--max_trials={max_trials}: must be >= 1")
    one_of("export", export, EXPORTS)
    check(hparams, root, seeds)
    data = data or runs.load_data(hparams.base, data_dir)
    folder = runs.prepare_run_dir(search_dir(root, hparams), hparams, FORMAT)
    with runs.claim(folder):  # keras-tuner's files have one writer: a second search here is refused
        if not os.path.exists(_seeds_file(folder)):
            io.write_json(_seeds_file(folder), list(seeds))
        model = hypermodel(hparams, seeds=seeds, root=root, data=data, verbose=verbose, **train_kw)
        tuner = make_tuner(hparams, model, folder, max_trials, distribution_strategy)
        if verbose:
            print(f"[tune] search folder {folder}; ranges: {', '.join(map(str, model.space))}", flush=True)
        try:
            tuner.search(verbose=int(verbose))
        finally:  # the finished trials' table, also when keras-tuner stops after failed trials
            rows = trials(tuner, model)
            write(rows, folder, title(hparams))
        report = None
        if export != "none":
            report = export_best(rows, model, os.path.join(folder, "best"), export, data_dir)
    return folder, rows, report


def summary_line(rows, hparams):
    done = [r for r in rows if "score" in r["metrics"]]
    best = next((r for r in rows if r["best"]), None)
    if best is None or not best["metrics"]:
        return f"[tune] {len(done)} of {len(rows)} trials finished; none is best yet"
    m = best["metrics"]
    return (f"[tune] {len(done)} of {len(rows)} trials finished; best (by {hparams.search.objective}) trial "
            f"{best['trial']} {best['values']}: val acc {100 * m['val_accuracy']:.2f}% at "
            f"{m['weights_kept']:.2f}% of weights, test acc {100 * m['test_accuracy']:.2f}%")
