"""The sparse-training runner and its command line (recipes/mnist_l0.py), on tiny real-format data."""
import dataclasses
import math
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

from tflth import io, l0, pruning, regularizers
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.pruning.scores import log_alpha
from tflth.trainer import cli, runner
from tflth.trainer.hparams import PENALTIES, ModelHparams, SparsityHparams, TrainerHparams

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = TrainerHparams(DatasetHparams(batch_size=20, validation_size=40), ModelHparams(),
                         TrainingHparams(iterations=30, eval_every=10), SparsityHparams(strength=50.0))


def _metrics(run, seed=0):
    return io.read_json(os.path.join(runner.seed_dir(run, seed), "metrics.json"))


def test_l0_run_records_the_architecture_and_resumes_by_skipping(tmp_path, digits_dir):
    run = runner.run(HPARAMS, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    metrics = _metrics(run)
    assert [r["step"] for r in metrics["rows"]] == [0, 10, 20, 30]
    assert metrics["rows"][-1]["test_acc"] is not None and metrics["final_test_acc"] == metrics["rows"][-1]["test_acc"]
    arch = metrics["architecture"]
    assert arch["original"] == "784-300-100" and 0 < metrics["weights_remaining"] <= 100
    assert os.path.exists(os.path.join(runner.seed_dir(run, 0), "final.weights.h5"))
    # The saved weights carry the masks the closed gates gave: they match the architecture.
    model = runner.build_model(HPARAMS, 0, n=200)
    model.load_weights(os.path.join(runner.seed_dir(run, 0), "final.weights.h5"))
    assert abs(l0.architecture(model).weights_kept - metrics["weights_remaining"]) < 1e-9
    stamp = os.path.getmtime(os.path.join(runner.seed_dir(run, 0), "metrics.json"))
    assert runner.run(HPARAMS, root=str(tmp_path), data_dir=digits_dir, verbose=False) == run
    assert os.path.getmtime(os.path.join(runner.seed_dir(run, 0), "metrics.json")) == stamp  # skipped


def test_validation_loss_is_the_data_term_without_the_penalty(tmp_path, digits_dir):
    run = runner.run(HPARAMS, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    row = _metrics(run)["rows"][-1]
    # strength=50 makes the L0 penalty dominate Keras' loss; val_loss must not include it.
    assert row["val_loss"] < 5 < row["train_loss"]


@pytest.mark.parametrize("penalty", ["log_uniform", "l1"])
def test_map_penalty_pruned_to_a_matched_percentage(tmp_path, digits_dir, penalty):
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(penalty=penalty, strength=1.0, keep_percent=5.0))
    model = runner.build_model(hparams, 0, n=200)
    assert all(layer.kernel_regularizer is not None for layer in pruning.prunable_layers(model))
    run = runner.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    pruned = _metrics(run)["pruned"]
    assert abs(pruned["weights_remaining"] - 5.0) < 0.5 and 0 <= pruned["test_acc"] <= 1
    assert _metrics(run)["weights_remaining"] == 100.0  # a MAP penalty alone leaves no exact zeros


# What --penalty_scale=tau sets in each MAP penalty (the flag's help): written out here, not read from
# kinds.scale_arguments, so that a penalty added to PENALTIES fails until its scale is decided.
TAU_ARGUMENT = {"student_t": ("scale", lambda tau: tau), "horseshoe": ("scale", lambda tau: tau),
                "horseshoe_plus": ("scale", lambda tau: tau), "log_t": ("loc", math.log),
                "log_scale_t": ("loc", math.log)}
NO_SCALE = ("l1", "lp", "log_uniform", "igg")
MAP_PENALTIES = [p for p in PENALTIES if p not in ("none", "l0")]


def test_every_map_penalty_has_a_decided_scale():
    assert sorted(MAP_PENALTIES) == sorted([*TAU_ARGUMENT, *NO_SCALE]) == sorted(regularizers.PENALTIES)


@pytest.mark.parametrize("penalty", MAP_PENALTIES)
def test_penalty_scale_reaches_every_layers_regularizer(penalty):
    """--penalty_scale=tau is scale=tau or loc=log(tau) of every layer's penalty (--per_layer's too);
    0 leaves the penalty's defaults; penalties without a scale ignore it."""
    cls, tau, n = regularizers.PENALTIES[penalty], 0.05, 200

    def built(scale):
        hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
            penalty=penalty, strength=2.0, penalty_scale=scale, per_layer="fc2.strength=4"))
        layers = pruning.prunable_layers(runner.build_model(hparams, 0, n=n))
        assert [layer.name for layer in layers] == ["fc1", "fc2", "output"]
        return layers

    w = np.concatenate([np.linspace(-0.5, 0.5, 21), [1e-4, -3e-3, 0.02, 2.0]]).astype(np.float32)
    for scale in (0.0, tau):
        for layer in built(scale):
            regularizer = layer.kernel_regularizer
            assert type(regularizer) is cls, (layer.name, type(regularizer))
            expected = {**cls(1.0).get_config(), "strength": (4.0 if layer.name == "fc2" else 2.0) / n}
            if scale and penalty in TAU_ARGUMENT:
                key, value = TAU_ARGUMENT[penalty]
                expected[key] = value(scale)
            assert regularizer.get_config() == expected, layer.name
            # What a saved model holds, and what loading it gives back.
            saved = layer.get_config()["kernel_regularizer"]
            assert saved["config"] == expected and saved["registered_name"] == f"tflth>{cls.__name__}"
            assert keras.regularizers.deserialize(saved).get_config() == expected
    # The value: the fc1 penalty of the same weights with tau and with the default.
    default, scaled = (float(built(scale)[0].kernel_regularizer(w)) for scale in (0.0, tau))
    assert np.isfinite(default) and np.isfinite(scaled)
    if penalty in TAU_ARGUMENT:
        key, value = TAU_ARGUMENT[penalty]
        assert abs(scaled - default) > 1e-3 * abs(default) + 1e-6, (default, scaled)
        assert scaled == pytest.approx(float(cls(2.0 / n, **{key: value(tau)})(w)), rel=1e-6)
    else:
        assert scaled == default


def test_keep_percent_keeps_the_largest_deployed_weights():
    hparams = dataclasses.replace(HPARAMS, sparsity=dataclasses.replace(HPARAMS.sparsity, keep_percent=10.0))
    model = runner.build_model(hparams, 0, n=200)
    deployed = np.concatenate([np.abs(l.deterministic_weights()[0].numpy()).ravel()
                               for l in pruning.prunable_layers(model)])
    runner.apply_keep_percent(model, hparams)
    kept = np.concatenate([m.ravel() for m in pruning.get_masks(model).values()]).astype(bool)
    assert kept.sum() == round(0.1 * kept.size)
    assert deployed[kept].min() >= deployed[~kept].max()  # one global threshold on |deployed|
    runner.apply_keep_percent(model, dataclasses.replace(  # already sparser: nothing changes
        hparams, sparsity=dataclasses.replace(hparams.sparsity, keep_percent=20.0)))
    assert np.array_equal(np.concatenate([m.ravel() for m in pruning.get_masks(model).values()]).astype(bool), kept)


def test_per_layer_overrides_reach_the_layers():
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        strength=0.1, per_layer="fc1.droprate_init=0.2,output.strength=0.7"))
    model = runner.build_model(hparams, 0, n=200)
    assert model.get_layer("fc1").droprate_init == 0.2 and model.get_layer("fc2").droprate_init == 0.5
    assert model.get_layer("output").l0_lambda == 0.7 and model.get_layer("fc2").l0_lambda == 0.1


def _variants(*args):
    values = flags.FlagValues()
    cli.define_run_flags(values)
    values(["recipe", *args])
    return cli.variants(values)


def test_a_list_of_penalties_is_one_run_folder_each(tmp_path):
    variants = _variants("--penalty=l0,l1,horseshoe", "--strength=0.1,0.01,0.001")
    assert [(v.sparsity.penalty, v.sparsity.strength) for v in variants] == [
        ("l0", 0.1), ("l1", 0.01), ("horseshoe", 0.001)]
    assert len({runner.run_dir(str(tmp_path), v) for v in variants}) == 3
    assert [v.sparsity.strength for v in _variants("--penalty=l1,lp", "--strength=0.5")] == [0.5, 0.5]


@pytest.mark.parametrize("args,message", [
    (["--penalty=l7"], "--penalty='l7'"),
    (["--strength=-1"], "--strength=-1.0"),
    (["--gates=channel"], "--gates='channel'"),
    (["--keep_percent=100"], "--keep_percent=100.0"),
    (["--per_layer=fc1.foo=1"], "--per_layer="),
    (["--per_layer=fc1.strength=-1"], "--per_layer="),
    (["--per_layer=fc1.droprate_init=1.5"], "--per_layer="),
    (["--penalty=l1,lp", "--strength=1,2,3"], "--strength='1,2,3'"),
    (["--strength=a"], "--strength='a'"),
    # A value no flag allows is reported before flags that do not go together.
    (["--penalty=none", "--prior=horseshoe", "--strength=2", "--prune_score=bogus"], "--prune_score='bogus'"),
])
def test_bad_flags_name_the_flag(args, message):
    with pytest.raises(ValueError) as error:
        _variants(*args)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_unknown_layer_in_per_layer_names_the_flag():
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(per_layer="fc9.strength=1"))
    with pytest.raises(ValueError, match=r"^--per_layer: .*fc9.*allowed: \['fc1', 'fc2', 'output'\]"):
        runner.check_run_args(hparams)


def _recipe(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(REPO, "recipes", "mnist_l0.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_recipe_end_to_end_and_bad_input(tmp_path, digits_dir):
    bad = _recipe("--gates=channel", f"--root={tmp_path}/runs", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --gates='channel'")
    assert not os.path.exists(tmp_path / "runs")
    out = _recipe("--iterations=20", "--eval_every=10", "--batch_size=20", "--validation_size=40", "--strength=5",
                  f"--data_dir={digits_dir}", f"--root={tmp_path}/runs", "--penalty=l0,student_t", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "architecture" in out.stdout and re.search(r"summarize with: \S*tflth summarize ", out.stdout)
    assert len(os.listdir(tmp_path / "runs")) == 2


def test_run_folder_hashes_are_pinned():
    """Renaming a field would orphan existing run folders: these hashes must not change."""
    assert runner.run_dir("r", TrainerHparams()) == "r/sparse_ee06e33c2b"
    assert runner.run_dir("r", HPARAMS) == "r/sparse_aefd3a2e62"


def test_penalty_none_refuses_per_layer_values():
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(penalty="none", per_layer="fc1.strength=1"))
    with pytest.raises(ValueError, match="^--per_layer=.*penalty=none"):
        runner.check_run_args(hparams)


BAYES = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
    penalty="none", strength=1.0, prior="log_uniform", estimator="local_reparam", kl_warmup=10, mc_samples=3,
    prune_score="log_alpha", prune_threshold="-3", prune_every=10, prune_end=29))


class _AtPruningSteps(keras.callbacks.Callback):
    """Copies every prunable layer's mask and log-alpha score at the given steps, right after the
    run's own pruning callback has acted (it acts before a step; callbacks passed to the run
    come after the run's own)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = set(steps), {}

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step in self.steps:
            self.seen[step] = {layer.name: (layer.mask.numpy().copy(), log_alpha(layer))
                               for layer in pruning.prunable_layers(self.model)}


def test_bayesian_run_prunes_while_training_and_measures_calibration(tmp_path, digits_dir):
    schedule = next(c for c in runner.callbacks(BAYES) if isinstance(c, pruning.PruneCallback)).schedule
    pruning_steps = [step for step in range(BAYES.training.iterations) if schedule(step)[0]]
    assert pruning_steps == [10, 20]
    record = _AtPruningSteps(pruning_steps)
    run = runner.run(BAYES, root=str(tmp_path), data_dir=digits_dir, verbose=False, extra_callbacks=[record])
    metrics = _metrics(run)
    assert metrics["prior"] == "log_uniform" and metrics["estimator"] == "local_reparam"
    calibration = metrics["calibration"]
    assert calibration["mc"]["samples"] == 3 and 0 <= calibration["mean"]["ece"] <= 1
    # The mean mode is what the engine evaluates: its error is the last row's.
    assert abs(calibration["mean"]["error"] - (1 - metrics["final_test_acc"])) < 1e-6
    # Right after each pruning step no kept weight has log alpha > 3 (score -log alpha >= -3), some
    # weights are gone, and masks only shrink.
    assert sorted(record.seen) == pruning_steps
    previous = None
    for step in pruning_steps:
        for name, (mask, score) in record.seen[step].items():
            assert np.all(score[mask == 1] >= -3.0), (step, name, int(np.sum(score[mask == 1] < -3.0)))
            assert previous is None or np.all(mask <= previous[name][0]), (step, name)
        assert sum(np.sum(mask == 0) for mask, _ in record.seen[step].values()) > 0, step
        previous = record.seen[step]
    # The saved model carries the masks of the last pruning step (nothing pruned after it), its pruned
    # weights are exactly zero, and the masks are what the architecture counts. Training goes on after
    # the last pruning step (--prune_end < --iterations), so the saved model's kept weights are not
    # checked against the threshold: about a fifth of fc1's have passed log alpha 3 by step 30 here.
    model = runner.build_model(BAYES, 0, n=200)
    runner.load_final(model, BAYES, runner.seed_dir(run, 0))
    kept = total = 0
    for layer in pruning.prunable_layers(model):
        mask = layer.mask.numpy()
        np.testing.assert_array_equal(mask, previous[layer.name][0])
        assert np.all(layer.kernel.numpy()[mask == 0] == 0), layer.name
        kept, total = kept + mask.sum(), total + mask.size
    assert 0 < kept < total
    assert abs(l0.architecture(model).weights_kept - metrics["weights_remaining"]) < 1e-9
    assert abs(metrics["weights_remaining"] - 100.0 * kept / total) < 1e-6


def test_prune_to_a_target_while_training_reaches_it(tmp_path, digits_dir):
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", strength=1.0, prior="normal", mc_samples=0, prune_score="snr", prune_to=20.0,
        prune_every=10, prune_end=20))
    metrics = _metrics(runner.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False))
    assert abs(metrics["weights_remaining"] - 20.0) < 0.5 and "mc" not in metrics["calibration"]


def test_a_last_pruning_step_inside_an_evaluation_interval_still_happens(tmp_path, digits_dir):
    """Keras calls callbacks between executions: steps_per_execution divides the pruning steps."""
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", prune_score="magnitude", prune_to=50.0, prune_every=10, prune_end=25))
    assert runner.callback_steps(hparams) == [25, 10]
    metrics = _metrics(runner.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False))
    assert abs(metrics["weights_remaining"] - 50.0) < 0.5


def test_magnitude_pruning_while_training_needs_no_bayesian_layers(tmp_path, digits_dir):
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", prune_score="magnitude", prune_to=50.0, prune_every=10, prune_end=20))
    metrics = _metrics(runner.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False))
    assert abs(metrics["weights_remaining"] - 50.0) < 0.5 and metrics["calibration"] is None


@pytest.mark.parametrize("kw,message", [
    (dict(prior="normal"), "--penalty='l0': must be none"),
    (dict(penalty="none", prior="normal", strength=0.5), "--strength=0.5"),
    (dict(penalty="none", prior="gauss", strength=1.0), "--prior='gauss'"),
    (dict(penalty="none", prior="normal", strength=1.0, prior_args="scale=-1"), "--prior_args='scale=-1'"),
    (dict(penalty="none", prior="normal", strength=1.0, prior_args="tau=1"), "--prior_args='tau=1'"),
    (dict(penalty="none", prior_args="scale=1"), "--prior_args='scale=1'"),
    (dict(penalty="none", prior="normal", strength=1.0, estimator="mc"), "--estimator='mc'"),
    (dict(penalty="none", prune_score="snr"), "--prune_score='snr': needs --prune_to"),
    (dict(penalty="none", prune_to=5.0), "--prune_score='': is required"),
    (dict(penalty="none", prune_score="snr", prune_threshold="x"), "--prune_threshold='x'"),
    (dict(penalty="none", prune_score="snr", prune_to=100.0), "--prune_to=100.0"),
    (dict(penalty="none", scale_init=0.0), "--scale_init=0.0"),
])
def test_bad_bayesian_and_pruning_flags_name_the_flag(kw, message):
    with pytest.raises(ValueError) as error:
        SparsityHparams(**kw)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("kw,message", [
    (dict(prune_start=25), r"^--prune_start=25: pruning runs from --prune_start=25 to --prune_end=22"),
    (dict(prune_end=40), r"^--prune_end=40: .*before --iterations=30"),
    (dict(prune_end=30), r"^--prune_end=30: .*before --iterations=30"),
])
def test_pruning_steps_outside_the_training_are_refused(kw, message):
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", prune_score="magnitude", prune_to=50.0, **kw))
    with pytest.raises(ValueError, match=message):
        runner.check_run_args(hparams)


@pytest.mark.parametrize("kw,message", [
    (dict(prune_score="snr", prune_to=5.0, prune_threshold="1"), "--prune_threshold='1': cannot go with --prune_to"),
    (dict(estimator="reparam"), "--estimator='reparam': applies to Bayesian layers only"),
    (dict(kl_warmup=10), "--kl_warmup=10: applies to Bayesian layers only"),
])
def test_flags_that_would_do_nothing_or_overshoot_are_refused(kw, message):
    with pytest.raises(ValueError) as error:
        SparsityHparams(penalty="none", **kw)
    assert str(error.value).startswith(message)


def test_a_score_the_layers_cannot_give_is_refused_before_training():
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", strength=1.0, prior="normal", prune_score="inclusion", prune_to=5.0))
    with pytest.raises(ValueError, match=r"^--prune_score=inclusion: score 'inclusion' needs"):
        runner.check_run_args(hparams)
    conv = dataclasses.replace(HPARAMS, model=ModelHparams("lenet5"), sparsity=SparsityHparams(
        penalty="none", strength=1.0, prior="horseshoe", prior_args="group=input"))
    with pytest.raises(ValueError, match=r"^--prior_args: Horseshoe\(group='input'\) does not fit conv layer"):
        runner.check_run_args(conv)


def test_a_killed_bayesian_run_resumes_to_the_same_result(tmp_path, digits_dir, monkeypatch):
    """The KL warm-up and the pruning schedule are functions of the step: a run killed right after a
    checkpoint and resumed gives the rows, masks and calibration of an uninterrupted one."""
    from tflth import engine
    expected = _metrics(runner.run(BAYES, root=str(tmp_path / "a"), data_dir=digits_dir, verbose=False,
                                   checkpoint_seconds=0))
    save = engine.state.save

    def save_then_die(path, model, *args, **kw):
        save(path, model, *args, **kw)
        if int(kw["step"]) == 20:
            raise KeyboardInterrupt
    monkeypatch.setattr(engine.state, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        runner.run(BAYES, root=str(tmp_path / "b"), data_dir=digits_dir, verbose=False, checkpoint_seconds=0)
    monkeypatch.setattr(engine.state, "save", save)
    progress = engine.progress_file(runner.seed_dir(runner.run_dir(str(tmp_path / "b"), BAYES), 0))
    assert 0 < engine.resumed_seconds(os.path.dirname(progress)) < 1000
    saved = dict(np.load(progress))
    np.savez(progress, **{**saved, "seconds": np.float64(1000.0)})  # as if the first process had run 1000 s
    resumed = _metrics(runner.run(BAYES, root=str(tmp_path / "b"), data_dir=digits_dir, verbose=False,
                                  checkpoint_seconds=0))
    for key in ("rows", "weights_remaining", "architecture", "calibration"):
        assert resumed[key] == expected[key], key
    assert 1000 < resumed["seconds"] < 1000 + expected["seconds"] * 10  # the cost counts the killed process's part


@pytest.mark.parametrize("kw,check", [
    (dict(prune_score="snip", prune_schedule="oneshot", prune_start=0, prune_to=10.0), "static"),
    (dict(prune_score="taylor", prune_to=10.0, prune_every=10, prune_end=20, prune_scope="erk"), "static"),
    (dict(prune_score="magnitude", prune_to=10.0, prune_every=10, prune_end=20, straight_through=True), "static"),
    (dict(prune_score="random", prune_schedule="oneshot", prune_start=0, prune_to=10.0, dst="set", dst_every=10),
     "dynamic"),
    (dict(prune_score="random", prune_schedule="oneshot", prune_start=0, prune_to=10.0, prune_scope="erk",
          dst="rigl", dst_every=10, prune_overrides="output=50"), "dynamic"),
])
def test_each_pruning_method_reaches_its_target(tmp_path, digits_dir, kw, check):
    def final_masks(**sparsity):
        hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(penalty="none", **sparsity))
        run = runner.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False)
        model = runner.build_model(hparams, 0, n=200)
        model.load_weights(os.path.join(runner.seed_dir(run, 0), "final.weights.h5"))
        return model, pruning.get_masks(model)

    model, masks = final_masks(**kw)
    if check == "dynamic":  # rewired: other connections than the same run without SET / RigL, as many per layer
        static = final_masks(**{k: v for k, v in kw.items() if not k.startswith("dst")})[1]
        assert all(masks[name].sum() == static[name].sum() for name in masks)
        assert any(np.any(masks[name] != static[name]) for name in masks)
    kept = sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values())
    assert abs(kept - 0.10) < 0.002  # to the weight (the schedule's steps round)
    for layer in pruning.prunable_layers(model):  # masked for good, straight-through included
        assert np.all(layer.kernel.numpy()[masks[layer.name] == 0] == 0)
    if kw.get("prune_overrides"):
        assert masks["output"].mean() == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("kw,message", [
    (dict(prune_score="magnitude", prune_schedule="weekly", prune_to=5.0), "--prune_schedule='weekly': allowed"),
    (dict(prune_score="magnitude", prune_threshold="1", prune_schedule="oneshot"), "--prune_schedule='oneshot': "
                                                                                   "prunes to --prune_to"),
    (dict(dst="rigl"), "--dst='rigl': needs a sparse model"),
    (dict(dst="grow", prune_score="random", prune_to=5.0), "--dst='grow': allowed"),
    (dict(dst="set", prune_score="random", prune_to=5.0, dst_alpha=1.0), "--dst_alpha=1.0: must be in (0, 1)"),
    (dict(prune_score="magnitude", prune_to=5.0, prune_overrides="first=0"), "--prune_overrides='first=0': "
                                                                             "'first=0': expected key="),
    (dict(prune_scope="erk"), "--prune_scope='erk': needs --prune_to"),
    (dict(straight_through=True, prune_score="snr", prune_to=5.0), "--straight_through=True: needs "
                                                                   "--prune_score=magnitude"),
    (dict(prune_score="snip", prune_to=5.0, prune_batches=0), "--prune_batches=0: must be >= 1"),
    (dict(prune_score="magnitude", prune_to=5.0, straight_through=True, dst="set"), "--dst='set': cannot go with "
                                                                                   "--straight_through"),
    (dict(penalty="l0", prune_score="inclusion", prune_to=5.0, dst="rigl"), "--dst='rigl': works on masked layers"),
])
def test_bad_method_flags_name_the_flag(kw, message):
    kw.setdefault("penalty", "none")
    with pytest.raises(ValueError) as error:
        SparsityHparams(**kw)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_rewiring_that_would_never_happen_is_refused_before_training():
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", prune_score="random", prune_schedule="oneshot", prune_start=0, prune_to=10.0, dst="set",
        dst_every=25))
    with pytest.raises(ValueError, match=r"^--dst_every=25: rewiring runs every --dst_every iterations until "
                                         r"--dst_end=22"):
        runner.check_run_args(hparams)


@pytest.mark.parametrize("overrides,message", [
    ("fc9=50", r"^--prune_overrides=fc9=50: overrides key 'fc9' is neither"),
    ("fc1=1,fc2=1", r"^--prune_overrides=fc1=1,fc2=1: allocation='global' cannot reach"),
])
def test_overrides_that_cannot_work_are_refused_before_training(overrides, message):
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(
        penalty="none", prune_score="magnitude", prune_to=50.0, prune_overrides=overrides))
    with pytest.raises(ValueError, match=message):
        runner.check_run_args(hparams)


def test_a_gradient_score_of_your_own_gets_training_batches(monkeypatch):
    def mine(layers, model=None, **context):
        return {layer.name: np.ones(layer.kernel.shape) for layer in layers}
    mine.per_model = True  # as pruning.register_score("mine", per_model=True) marks it
    monkeypatch.setitem(pruning.scores._SCORES, "mine", mine)
    hparams = dataclasses.replace(HPARAMS, sparsity=SparsityHparams(penalty="none", prune_score="mine", prune_to=10))
    data = {"x": np.zeros((50, 28, 28, 1), np.uint8), "y": np.zeros(50, np.int64)}
    callback = next(c for c in runner.callbacks(hparams, data) if isinstance(c, pruning.PruneCallback))
    x, y = callback.score_args["data"](3)[0]  # --prune_batches batches drawn for step 3
    assert x.shape == (HPARAMS.dataset.batch_size, 28, 28, 1) and len(y) == HPARAMS.dataset.batch_size


def test_a_kind_cannot_overwrite_what_the_runner_writes(tmp_path, digits_dir, monkeypatch):
    from tflth.trainer import kinds
    masked = next(kind for kind in kinds._KINDS if kind.name == "masked")
    greedy = dataclasses.replace(masked, name="greedy", applies=lambda s: True,
                                 measure=lambda model, data, s: {"pruned": 1, "mine": 2})
    monkeypatch.setattr(kinds, "_KINDS", [greedy, *kinds._KINDS])
    hparams = dataclasses.replace(HPARAMS, training=TrainingHparams(iterations=10, eval_every=10),
                                  sparsity=SparsityHparams(penalty="none"))
    with pytest.raises(ValueError, match=r"^kind 'greedy': measure\(\) returned \['pruned'\], which the runner "
                                         r"writes itself$"):
        runner.run(hparams, root=str(tmp_path), data_dir=digits_dir, verbose=False)
