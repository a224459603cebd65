"""keras-tuner searches (tflth.tuning, recipes/tune.py) on tiny real-format data."""
import dataclasses
import os
import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from tflth import io, runs
from tflth.export import from_run
from tflth.lottery import paths as lottery_paths
from tflth.lottery import runner as lottery
from tflth.lottery.hparams import LotteryHparams
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.trainer import runner as trainer
from tflth.trainer.hparams import ModelHparams, SparsityHparams, TrainerHparams
from tflth.tuning import search, space
from tflth.tuning.hypermodel import SparseHyperModel, _tuner_checkpoint, objective, score

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = DatasetHparams(batch_size=20, validation_size=40)
TRAINING = TrainingHparams(iterations=30, eval_every=10)
GRADUAL = SparsityHparams(penalty="none", prune_score="magnitude", prune_to=50.0, prune_every=5)
BASE = TrainerHparams(DATA, ModelHparams(), TRAINING, GRADUAL)


@pytest.fixture(scope="module")
def data(digits_dir):
    return runs.load_data(BASE, digits_dir)


def _weights(run, seed=0):
    model = trainer.build_model(TrainerHparams.from_dict(io.read_json(runs.hparams_file(run))), seed)
    model.load_weights(runs.final_weights(trainer.seed_dir(run, seed)))
    return [np.asarray(w) for w in model.weights]


# The search space.

@pytest.mark.parametrize("text, expected", [
    ("strength=log:0.01:1", space.Range("strength", "log", (0.01, 1.0))),
    ("prune_to=float:2:20:2", space.Range("prune_to", "float", (2.0, 20.0, 2.0))),
    ("prune_start=int:0:1000:250", space.Range("prune_start", "int", (0, 1000, 250))),
    ("prior=choice:horseshoe:log_uniform", space.Range("prior", "choice", ("horseshoe", "log_uniform"))),
    ("straight_through=choice:true:false", space.Range("straight_through", "choice", (True, False))),
    ("prune_to=choice:5:10", space.Range("prune_to", "choice", (5.0, 10.0))),
    ("prior_args.global_scale=log:1e-6:1e-3", space.Range("prior_args.global_scale", "log", (1e-6, 1e-3))),
    ("prune_threshold=float:-3:-1", space.Range("prune_threshold", "float", (-3.0, -1.0))),
])
def test_ranges_parse_to_the_field_types(text, expected):
    assert space.parse(text) == expected
    assert space.parse(str(expected)) == expected  # str() writes it back


@pytest.mark.parametrize("text, message", [
    ("foo=float:1:2", "'foo' is not a hyperparameter"),
    ("strength=grid:1:2", "kind 'grid' is unknown"),
    ("strength=log:0:1", "log needs low > 0"),
    ("strength=float:2:1", "low must be below high"),
    ("strength=float:1", "needs low:high"),
    ("strength=float:0:1:2", "the step must be in"),
    ("prune_start=float:1:2", "prune_start is an integer"),
    ("strength=int:1:5", "strength is a float"),
    ("prior=float:1:2", "takes str values; use choice"),
    ("prune_to=choice:5:x", "'x' is not a finite float"),
    ("strength=float:0.001:inf", "'inf' is not a finite float"),
    ("strength=choice:0.1:nan", "'nan' is not a finite float"),
    ("prune_to=choice:5:5", "a choice is repeated"),
    ("prior_args=choice:a", "search one of its entries"),
    ("dataset=choice:mnist:fashion_mnist", "a search reads its data once"),
])
def test_bad_ranges_name_the_flag_in_one_line(text, message):
    with pytest.raises(ValueError) as error:
        space.parse(text)
    assert str(error.value).startswith(f"--search={text}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_space_needs_a_sparsity_hyperparameter_and_distinct_names():
    with pytest.raises(ValueError, match=r"^--search: the space \(lr, batch_size\) has no sparsity hyperparameter"):
        space.parse_space(["lr=log:1e-4:1e-2", "batch_size=choice:20:40"])
    with pytest.raises(ValueError, match=r"^--search: the space \(mc_samples\) has no sparsity hyperparameter"):
        space.parse_space(["mc_samples=int:1:30"])  # how a Bayesian model is evaluated, not how sparse it is
    with pytest.raises(ValueError, match=r"^--search: strength given more than once"):
        space.parse_space(["strength=log:0.01:1", "strength=float:1:2"])
    assert len(space.parse_space(["lr=log:1e-4:1e-2", "prior_args.scale=float:0.1:1"])) == 2


def test_apply_puts_values_in_their_sections():
    base = dataclasses.replace(BASE, sparsity=SparsityHparams(penalty="none", prior="horseshoe", strength=1.0,
                                                              prior_args="global_scale=1e-05,scale=1"))
    got = space.apply(base, {"prior_args.scale": 0.25, "lr": 0.01, "batch_size": 40})
    assert got.sparsity.prior_args == "global_scale=1e-05,scale=0.25" and got.training.lr == 0.01
    assert got.dataset.batch_size == 40 and got.model == base.model
    threshold = space.apply(dataclasses.replace(BASE, sparsity=SparsityHparams(
        penalty="none", prior="log_uniform", strength=1.0, prune_score="log_alpha", prune_threshold="-3")),
        {"prune_threshold": -2.5})
    assert threshold.sparsity.prune_threshold == "-2.5"
    with pytest.raises(ValueError, match=r"^--prune_to=150"):
        space.apply(BASE, {"prune_to": 150.0})


def test_lottery_spaces_take_the_lottery_flags():
    assert space.parse("rewind_iteration=int:0:2000:500", LotteryHparams).values == (0, 2000, 500)
    with pytest.raises(ValueError, match=r"^--search=strength=log:0.1:1: 'strength' is not a hyperparameter"):
        space.parse("strength=log:0.1:1", LotteryHparams)
    with pytest.raises(ValueError, match=r"no sparsity hyperparameter; search at least one of the pruning flags"):
        space.parse_space(["lr=log:1e-4:1e-2"], LotteryHparams)


def test_every_corner_of_the_space_is_checked_against_the_base_run():
    space.check(space.parse_space(["prune_to=float:5:50"]), BASE)
    with pytest.raises(ValueError, match=r"^--search: with every range at its first value: --penalty=.l0.: must be"):
        space.check(space.parse_space(["prior=choice:horseshoe"]), TrainerHparams())
    with pytest.raises(ValueError, match=r"^--search=prior=choice:none:horseshoe: at prior=horseshoe: --penalty="):
        space.check(space.parse_space(["prior=choice:none:horseshoe"]), TrainerHparams())
    late = space.parse_space(["prune_start=int:0:25"])
    space.check(late, BASE)  # valid hparams, but the schedule would end before it starts:
    with pytest.raises(ValueError, match=r"^--search=prune_start=int:0:25: at prune_start=25: --prune_start=25"):
        space.check(late, BASE, run_check=trainer.check_run_args)


@pytest.mark.parametrize("sparsity, names", [
    (SparsityHparams(strength=0.1), ["strength", "droprate_init"]),
    (SparsityHparams(penalty="log_t"), ["strength"]),
    (GRADUAL, ["prune_to", "prune_start"]),
    (SparsityHparams(penalty="none", prior="horseshoe", strength=1.0, prune_score="snr", prune_to=10.0,
                     prune_schedule="oneshot", prune_start=10), ["prior_args.global_scale", "prune_to"]),
    (SparsityHparams(penalty="none", prior="log_uniform", strength=1.0, prune_score="log_alpha",
                     prune_threshold="-3"), ["prune_threshold"]),
])
def test_each_family_has_its_sparsity_hyperparameters_by_default(sparsity, names):
    base = TrainerHparams(DATA, ModelHparams(), TRAINING, sparsity)
    ranges = space.default_space(base)
    assert [r.name for r in ranges] == names
    space.check(ranges, base, run_check=trainer.check_run_args)  # every corner is a valid run
    hparams = search.TuneHparams(DATA, ModelHparams(), TRAINING, sparsity)
    assert hparams.space == ranges  # an empty --search searches them
    lottery_ranges = space.default_space(LotteryHparams(DATA, training=TRAINING))
    assert [r.name for r in lottery_ranges] == ["fraction", "rewind_iteration"]


def test_a_family_without_sparsity_hyperparameters_needs_a_search():
    with pytest.raises(ValueError, match=r"^--search: this run's family has no default ranges"):
        space.default_space(TrainerHparams(DATA, ModelHparams(), TRAINING, SparsityHparams(penalty="none")))


# Objectives.

def test_objectives_are_the_reported_metrics_and_never_the_test_set():
    assert objective("score").direction == "max" and objective("weights_kept").direction == "min"
    with pytest.raises(ValueError, match=r"^--objective='val_acc' is not a metric of the trials; allowed: score"):
        objective("val_acc")
    with pytest.raises(ValueError, match="the test set must not choose hyperparameters"):
        objective("test_accuracy")


def test_score_ranks_any_trial_within_the_budget_above_any_over_it():
    assert score(0.97, 10.0) == 0.97
    assert score(0.97, 10.0, kept_cost=0.5) == pytest.approx(0.97 - 0.05)
    within, over, far_over = score(0.50, 5.0, 5.0), score(0.99, 5.5, 5.0), score(0.99, 50.0, 5.0)
    assert within > over > far_over


# Searches.

def test_two_trial_search_differs_and_exports_the_best(tmp_path, data, digits_dir):
    hparams = search.TuneHparams(DATA, ModelHparams(), TRAINING, GRADUAL, search.SearchHparams(
        search="prune_to=float:5:50,lr=log:1e-4:1e-2", objective="score", max_weights_kept=40.0))
    folder, rows, report = search.run(hparams, max_trials=2, root=str(tmp_path), data=data, data_dir=digits_dir,
                                      verbose=False)
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    assert rows[0]["values"] != rows[1]["values"] and rows[0]["run_dir"] != rows[1]["run_dir"]
    for r in rows:  # each trial is a finished run of its own hyperparameters, measured as exported
        saved = TrainerHparams.from_dict(io.read_json(runs.hparams_file(r["run_dir"])))
        assert saved.sparsity.prune_to == r["values"]["prune_to"] and saved.training.lr == r["values"]["lr"]
        assert r["metrics"]["weights_kept"] == pytest.approx(r["values"]["prune_to"], abs=0.01)
        assert r["metrics"]["score"] == pytest.approx(score(r["metrics"]["val_accuracy"], r["metrics"]["weights_kept"],
                                                            40.0))
    best = max(rows, key=lambda r: r["metrics"]["score"])
    assert [r["best"] for r in rows] == [r is best for r in rows]
    assert report["trial"] == best["trial"] and report["test_accuracy"] == report["model_test_accuracy"]
    assert 100 * report["weights_kept"] / report["weights"] == pytest.approx(best["metrics"]["weights_kept"], abs=0.01)
    loaded = tf.saved_model.load(os.path.join(folder, "best"))
    x = np.asarray(next(iter(data["test"]))[0])[:8]
    model, _, _ = from_run.load(best["run_dir"], 0)
    np.testing.assert_allclose(loaded.serve(x).numpy(), model(x, training=False).numpy(), atol=1e-5)
    text = search.write(rows, folder, "tiny")
    assert "**best**" in text
    assert all(os.path.exists(os.path.join(folder, f"trials.{e}")) for e in ("json", "md", "png"))
    recorded = io.read_json(os.path.join(folder, "best", "tflth_export.json"))
    assert recorded["test_accuracy"] == report["test_accuracy"] and recorded["trial"] == best["trial"]


def test_a_search_that_stops_on_failed_trials_keeps_its_table(tmp_path, data, monkeypatch):
    hparams = search.TuneHparams(DATA, ModelHparams(), TRAINING, GRADUAL, search.SearchHparams(
        search="prune_to=float:5:50"))
    folder, _, _ = search.run(hparams, max_trials=1, root=str(tmp_path), data=data, export="none", verbose=False)
    os.remove(os.path.join(folder, "trials.json"))

    def stop(self, *args, **kwargs):  # what keras-tuner raises after failed trials in a row
        raise RuntimeError("Number of consecutive failures exceeded the limit of 3.")
    monkeypatch.setattr(keras_tuner.RandomSearch, "search", stop)
    with pytest.raises(RuntimeError, match="consecutive failures"):
        search.run(hparams, max_trials=4, root=str(tmp_path), data=data, export="none", verbose=False)
    assert len(io.read_json(os.path.join(folder, "trials.json"))["trials"]) == 1


def test_trials_start_afresh_and_equal_runs_made_alone(tmp_path, digits_dir, data):
    """L0 gates and penalty, optimizer, data order: nothing leaks from one trial into the next."""
    base = TrainerHparams(DATA, ModelHparams(), TRAINING, SparsityHparams(strength=5.0))
    model = SparseHyperModel(base, space.parse_space(["strength=choice:0.5:20"]), root=str(tmp_path / "tune"),
                             data=data, verbose=False)
    tuner = keras_tuner.RandomSearch(model, objective=objective("val_loss"), max_trials=2, seed=1,
                                     directory=str(tmp_path), project_name="t")
    tuner.search()
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert {t.hyperparameters.values["strength"] for t in trials} == {0.5, 20.0}
    second = trials[1].hyperparameters
    alone = trainer.run(space.apply(base, {"strength": second.values["strength"]}), root=str(tmp_path / "alone"),
                        data=data, verbose=False)
    for got, want in zip(_weights(model.run_dir(second)), _weights(alone)):
        np.testing.assert_array_equal(got, want)
    # keras-tuner's own checkpoint holds the trial's final model (gates turned to masks), not an earlier epoch.
    best = tuner.get_best_models(1)[0]
    for got, want in zip(best.weights, _weights(model.run_dir(tuner.oracle.get_best_trials(1)[0].hyperparameters))):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_a_lottery_search_varies_the_rewinding_iteration(tmp_path, data):
    base = LotteryHparams(DATA, training=TRAINING)
    model = SparseHyperModel(base, space.parse_space(["rewind_iteration=choice:0:10"], LotteryHparams), levels=1,
                             root=str(tmp_path / "tune"), data=data, verbose=False)
    tuner = keras_tuner.RandomSearch(model, objective=objective("val_loss"), max_trials=2, seed=0,
                                     directory=str(tmp_path), project_name="t")
    tuner.search()
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert {t.hyperparameters.values["rewind_iteration"] for t in trials} == {0, 10}
    second = trials[1].hyperparameters
    alone = lottery.run(space.apply(base, second.values), levels=1, controls=(), root=str(tmp_path / "alone"),
                        data=data, verbose=False)
    level = lottery_paths.branch_dir(lottery_paths.replicate_dir(alone, 0), 1, "main")
    want, _, _ = from_run.load(alone, 0, level=1)
    got, _, _ = from_run.load(model.run_dir(second), 0, level=1)
    for a, b in zip(got.weights, want.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kept = trials[1].metrics.get_last_value("weights_kept")
    assert kept == pytest.approx(io.read_json(os.path.join(level, "metrics.json"))["weights_remaining"], abs=1e-6)
    with pytest.raises(ValueError, match=r"^--levels=None: a lottery search needs"):
        SparseHyperModel(base, space.parse_space(["fraction=float:0.1:0.5"], LotteryHparams))


def test_a_lottery_search_from_its_flags_exports_the_last_levels_ticket(tmp_path, data, digits_dir):
    hparams = search.LotteryTuneHparams(DATA, training=TRAINING, search=search.SearchHparams(
        search="rewind_iteration=choice:0:10", levels=1, objective="val_accuracy"))
    folder, rows, report = search.run(hparams, max_trials=2, root=str(tmp_path), data=data, data_dir=digits_dir,
                                      export="sparse", verbose=False)
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    assert {r["values"]["rewind_iteration"] for r in rows} == {0, 10}
    assert all(os.path.basename(r["run_dir"]).startswith("lottery_") for r in rows)
    best = next(r for r in rows if r["best"])
    assert report["what"].endswith("replicate 0 level 1 (main)")
    assert report["test_accuracy"] == report["model_test_accuracy"]
    assert 100 * report["weights_kept"] / report["weights"] == pytest.approx(best["metrics"]["weights_kept"], abs=0.01)
    assert io.read_json(os.path.join(folder, "best", "tflth_export.json"))["trial"] == best["trial"]
    with pytest.raises(ValueError, match=r"^--levels=0: a lottery search needs"):
        search.LotteryTuneHparams(DATA, training=TRAINING)
    late = search.LotteryTuneHparams(DATA, training=TRAINING, pruning=dataclasses.replace(
        LotteryHparams().pruning, rewind_iteration=15), search=search.SearchHparams(
        search="fraction=float:0.1:0.5", levels=1, tuner="hyperband", max_epochs=3))
    with pytest.raises(ValueError, match=r"^--tuner=hyperband: its trials of 1 epochs .*--rewind_iteration=15"):
        search.check(late, str(tmp_path / "never"))
    with pytest.raises(ValueError, match=r"^--levels=1: only lottery searches"):
        search.TuneHparams(DATA, ModelHparams(), TRAINING, GRADUAL, search.SearchHparams(levels=1))
    out = _recipe("--levels=1", "--search=strength=log:0.1:1", f"--root={tmp_path}/cli", cwd=tmp_path,
                  script="tune_lottery.py")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(
        "error: --search=strength=log:0.1:1: 'strength' is not a hyperparameter of the run; give a flag of the "
        "lottery runner"), out.stderr[-500:]
    assert not os.path.exists(tmp_path / "cli")


class _Interrupt(keras.callbacks.Callback):
    """Stops the process (as Ctrl-C would) at step 25 of the second trial (whose last checkpoint
    is step 20's). Class attributes: keras-tuner deep-copies the callbacks into every trial."""
    trainings = 0

    def on_train_begin(self, logs=None):
        _Interrupt.trainings += 1

    def on_train_batch_end(self, batch, logs=None):
        if _Interrupt.trainings == 2 and int(self.model.optimizer.iterations.numpy()) >= 25:
            _Interrupt.trainings += 1
            raise KeyboardInterrupt


def test_an_interrupted_search_resumes_its_trial_where_it_stopped(tmp_path, data, capsys):
    hparams = search.TuneHparams(DATA, ModelHparams(), TRAINING, GRADUAL, search.SearchHparams(
        search="prune_to=float:5:50"))
    def tuner():
        model = search.hypermodel(hparams, root=str(tmp_path), data=data, checkpoint_seconds=0.0)
        return search.make_tuner(hparams, model, str(tmp_path / "search"), 3), model
    first, model = tuner()
    with pytest.raises(KeyboardInterrupt):
        first.search(callbacks=[_Interrupt()])
    interrupted = sorted(first.oracle.trials.items())[-1][1].hyperparameters.values
    capsys.readouterr()
    again, model = tuner()  # reloads the project: keras-tuner retries the trial that was running
    again.search()
    assert "resuming at step 20" in capsys.readouterr().out
    trials = sorted(again.oracle.trials.values(), key=lambda t: t.trial_id)
    assert len(trials) == 3 and trials[1].hyperparameters.values == interrupted
    assert all(t.status == "COMPLETED" for t in trials)
    alone = trainer.run(space.apply(BASE, interrupted), root=str(tmp_path / "alone"), data=data, verbose=False)
    resumed = io.read_json(runs.metrics_file(trainer.seed_dir(model.run_dir(trials[1].hyperparameters), 0)))
    assert resumed["rows"] == io.read_json(runs.metrics_file(trainer.seed_dir(alone, 0)))["rows"]


class _Strategy(keras.callbacks.Callback):
    seen = []

    def on_train_begin(self, logs=None):
        _Strategy.seen += [tf.distribute.get_strategy(), self.model.distribute_strategy,
                           type(self.model.trainable_weights[0].value).__name__]


def test_the_tuners_distribution_strategy_reaches_the_training(tmp_path, data):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    model = SparseHyperModel(BASE, space.parse_space(["prune_to=float:5:50"]), root=str(tmp_path), data=data,
                             verbose=False)
    tuner = keras_tuner.RandomSearch(model, objective=objective("score"), max_trials=1, directory=str(tmp_path),
                                     project_name="t", distribution_strategy=strategy)
    tuner.search(callbacks=[_Strategy()])
    assert _Strategy.seen[:2] == [strategy, strategy]
    assert _Strategy.seen[2] == "MirroredVariable"  # the trained variables are the strategy's


def test_hyperband_trains_each_budget_from_initialisation(tmp_path, data):
    hparams = search.TuneHparams(DATA, ModelHparams(), TRAINING, GRADUAL, search.SearchHparams(
        search="prune_to=float:5:50", tuner="hyperband", max_epochs=3))
    folder, rows, _ = search.run(hparams, root=str(tmp_path), data=data, export="none", verbose=False)
    budgets = {r["values"]["epochs"] for r in rows}
    assert budgets == {1, 3} and all(r["status"] == "COMPLETED" for r in rows)
    for r in rows:
        saved = io.read_json(runs.metrics_file(trainer.seed_dir(r["run_dir"], 0)))
        assert saved["rows"][0]["step"] == 0 and saved["rows"][-1]["step"] == 10 * r["values"]["epochs"]


def test_unknown_objective_or_data_given_to_search_stop_before_training(tmp_path, data):
    model = SparseHyperModel(BASE, space.parse_space(["prune_to=float:5:50"]), root=str(tmp_path / "runs"),
                             data=data, verbose=False)
    tuner = keras_tuner.RandomSearch(model, objective="val_acc", max_trials=1, directory=str(tmp_path),
                                     project_name="a")
    with pytest.raises(keras_tuner.errors.FatalValueError, match=r"^--objective='val_acc' is not a metric"):
        tuner.search()
    tuner = keras_tuner.RandomSearch(model, objective=objective("score"), max_trials=1, directory=str(tmp_path),
                                     project_name="b")
    with pytest.raises(keras_tuner.errors.FatalValueError, match="trains on its hparams' dataset"):
        tuner.search(np.zeros((4, 28, 28)), np.zeros(4))
    assert not os.path.exists(tmp_path / "runs")


def _recipe(*args, cwd, script="tune.py"):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(REPO, "recipes", script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_recipe_searches_bayesian_layers_resumes_and_refuses_bad_input(tmp_path, digits_dir):
    common = [f"--data_dir={digits_dir}", f"--root={tmp_path}/runs", "--iterations=30", "--eval_every=10",
              "--batch_size=20", "--validation_size=40", "--penalty=none", "--prior=horseshoe", "--strength=1",
              "--prune_score=snr", "--prune_to=50", "--prune_every=5"]
    for bad, message in ((["--search=lr=log:1e-4:1e-2"], "error: --search: the space (lr) has no sparsity"),
                         (["--search=prune_to=float:5:50", "--objective=val_acc"], "error: --objective='val_acc'"),
                         (["--search=prune_start=int:0:25"], "error: --search=prune_start=int:0:25: at prune_start=25"),
                         (["--search=prune_to=float:5:50", "--tuner=hyperband", "--prune_start=15", "--max_trials=3"],
                          "error: --tuner=hyperband: its trials of 1 epochs (10 iterations"),
                         (["--search=prune_to=float:5:50", "--tuner_seed=0"], "error: --tuner_seed=0: must be >= 1")):
        out = _recipe(*common, *bad, cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(message), out.stderr[-500:]
        assert ("--max_trials is not used by hyperband" in out.stdout) == ("--max_trials=3" in bad)
    assert not os.path.exists(tmp_path / "runs")
    args = [*common, "--search=prior_args.global_scale=log:1e-6:1e-3,prune_to=choice:20:40", "--max_trials=2",
            "--tuner=bayesian", "--quiet"]
    out = _recipe(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[tune] 2 of 2 trials finished" in out.stdout and "exported trial" in out.stdout
    folder = out.stdout.strip().splitlines()[-1].split("done: ")[1]
    trials = io.read_json(os.path.join(folder, "trials.json"))["trials"]
    assert len(trials) == 2 and trials[0]["values"] != trials[1]["values"]
    kept = {r["values"]["prune_to"]: r["metrics"]["weights_kept"] for r in trials}
    assert all(abs(k - v) < 0.01 for k, v in kept.items())
    stamps = [os.path.getmtime(runs.metrics_file(trainer.seed_dir(r["run_dir"], 0))) for r in trials]
    again = _recipe(*args, cwd=tmp_path)  # nothing left to do: the same table, no trial retrained
    assert again.returncode == 0 and io.read_json(os.path.join(folder, "trials.json"))["trials"] == trials
    assert stamps == [os.path.getmtime(runs.metrics_file(trainer.seed_dir(r["run_dir"], 0))) for r in trials]
    other = _recipe(*args, "--seeds=1", cwd=tmp_path)  # the trials' metrics are means over the search's seeds
    assert other.returncode == 2 and "is a search over seeds 0" in other.stderr


def test_keras_tuners_best_epoch_checkpoint_is_taken_out_of_a_trials_callbacks(tmp_path):
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch  # keras-tuner's own, as its trials get it
    checkpoint = SaveBestEpoch(keras_tuner.Objective("val_accuracy", "max"), str(tmp_path / "best.weights.h5"))
    other = keras.callbacks.History()
    assert _tuner_checkpoint([other, checkpoint]) == (checkpoint, [other])
    assert _tuner_checkpoint([other]) == (None, [other])
