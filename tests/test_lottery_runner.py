import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from tflth import io
from tflth import engine, pruning
from tflth.lottery import branches, paths, runner
from tflth.lottery.hparams import DatasetHparams, LotteryHparams, PruningHparams, TrainingHparams

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = LotteryHparams(DatasetHparams(batch_size=20, validation_size=40),
                         training=TrainingHparams(iterations=40, eval_every=10))


def _run(root, digits_dir, hparams=HPARAMS, **kw):
    kw.setdefault("levels", 2)
    return runner.run(hparams, root=str(root), data_dir=digits_dir, verbose=False, **kw)


def _metrics(run, level, branch, seed=0):
    return io.read_json(paths.metrics(paths.branch_dir(paths.replicate_dir(run, seed), level, branch)))


def _masks(run, level, branch="main", seed=0):
    return io.read_masks(paths.branch_masks(paths.branch_dir(paths.replicate_dir(run, seed), level, branch)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits_dir):
    return _run(tmp_path_factory.mktemp("runs"), digits_dir)


def test_run_folder_layout(finished):
    assert os.path.basename(finished).startswith("lottery_")
    assert io.read_json(paths.hparams_file(finished)) == {"format": runner.FORMAT, **HPARAMS.to_dict()}
    assert "--iterations=40" in open(paths.flags_file(finished)).read()
    replicate = paths.replicate_dir(finished, 0)
    for path in (paths.init_state(replicate), paths.rewind_state(replicate)):
        assert os.path.exists(path)
    assert not os.path.exists(paths.pretrain_dir(replicate))  # k = 0: nothing to pretrain
    for level, branches in ((0, ["main"]), (1, ["main", "reinit", "random_prune", "continue"]),
                            (2, ["main", "reinit", "random_prune", "continue"])):
        for branch in branches:
            folder = paths.branch_dir(replicate, level, branch)
            for path in (paths.metrics(folder), paths.final_weights(folder), paths.branch_masks(folder)):
                assert os.path.exists(path), path
            assert not os.path.exists(paths.progress(folder))
            assert os.listdir(paths.tensorboard(folder))
        assert not os.path.exists(paths.branch_dir(replicate, level, "missing"))
    assert not [f for _, _, files in os.walk(finished) for f in files if f.startswith(".tmp-")]


def test_levels_prune_the_papers_rates(finished):
    kept = [{n: int(m.sum()) for n, m in _masks(finished, level).items()} for level in range(3)]
    assert kept[0] == {"fc1": 235200, "fc2": 30000, "output": 1000}
    assert kept[1] == {"fc1": 188160, "fc2": 24000, "output": 900}
    assert kept[2] == {"fc1": 150528, "fc2": 19200, "output": 810}
    for level in (1, 2):
        for name, mask in _masks(finished, level).items():
            assert np.all(mask <= _masks(finished, level - 1)[name])  # masks only shrink
    metrics = _metrics(finished, 2, "main")
    assert metrics["weights_remaining"] == pytest.approx(100 * 170538 / 266200)
    assert metrics["mask_overlap_prev"] == pytest.approx(170538 / 213060)


def test_metrics_rows_and_early_stopping(finished):
    metrics = _metrics(finished, 1, "main")
    assert [r["step"] for r in metrics["rows"]] == [0, 10, 20, 30, 40]
    trained = metrics["rows"][1:]
    best = min(trained, key=lambda r: r["val_loss"])
    assert metrics["early_stop_step"] == best["step"]
    assert metrics["early_stop_test_acc"] == best["test_acc"]
    assert metrics["final_test_acc"] == trained[-1]["test_acc"]
    # XLA depends on op determinism (Keras' rule), which an earlier test in this process may set.
    assert {k: v for k, v in metrics["compiled"].items() if k != "jit_compile"} == {"steps_per_execution": 10,
                                                                                    "replicas": 1}
    assert _metrics(finished, 0, "main")["rows"][-1]["test_acc"] > 0.5  # it learned something
    assert set(metrics["movement"]) == {"kept", "removed"}


def test_controls_share_the_tickets_sparsity(finished):
    ticket = _masks(finished, 2)
    np.testing.assert_array_equal(_masks(finished, 2, "reinit")["fc1"], ticket["fc1"])
    np.testing.assert_array_equal(_masks(finished, 2, "continue")["fc1"], ticket["fc1"])
    shuffled = _masks(finished, 2, "random_prune")
    assert {n: int(m.sum()) for n, m in shuffled.items()} == {n: int(m.sum()) for n, m in ticket.items()}
    assert not np.array_equal(shuffled["fc1"], ticket["fc1"])


def test_rerun_skips_finished_work(finished, digits_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished branch was trained again")
    monkeypatch.setattr(engine, "train", fail)
    _run(os.path.dirname(finished), digits_dir)


def test_interrupted_level_resumes_to_the_same_result(tmp_path, digits_dir, monkeypatch):
    hparams = dataclasses.replace(HPARAMS, pruning=PruningHparams(rewind_iteration=10))
    reference = _run(tmp_path / "a", digits_dir, hparams, levels=1, controls=())

    save = engine.state.save

    def save_then_die(path, model, *args, **kw):
        save(path, model, *args, **kw)
        if "level_1" in path and int(kw["step"]) == 20:
            raise KeyboardInterrupt  # killed right after a checkpoint
    monkeypatch.setattr(engine.state, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", digits_dir, hparams, levels=1, controls=(), checkpoint_seconds=0)
    monkeypatch.setattr(engine.state, "save", save)
    assert os.path.exists(paths.progress(paths.branch_dir(paths.replicate_dir(
        paths.run_dir(str(tmp_path / "b"), hparams), 0), 1, "main")))
    resumed = _run(tmp_path / "b", digits_dir, hparams, levels=1, controls=(), checkpoint_seconds=0)

    assert _metrics(reference, 1, "main")["rows"] == _metrics(resumed, 1, "main")["rows"]
    for level in (1, 2):  # level 2's masks come from level 1's trained weights
        for name, mask in io.read_masks(paths.level_masks(paths.replicate_dir(reference, 0), level)).items():
            np.testing.assert_array_equal(
                mask, io.read_masks(paths.level_masks(paths.replicate_dir(resumed, 0), level))[name])


LATE = LotteryHparams(DatasetHparams(batch_size=20, validation_size=40),
                      training=TrainingHparams(iterations=40, eval_every=10, lr_drops="5"),
                      pruning=PruningHparams(rewind_iteration=10))


@pytest.fixture(scope="module")
def late(tmp_path_factory, digits_dir):
    """Rewinding to iteration k = 10, after a learning-rate drop at 5."""
    return _run(tmp_path_factory.mktemp("late"), digits_dir, LATE, levels=1)


@pytest.mark.parametrize("policy", ["fresh", "rewind"])
def test_every_branch_starts_from_the_same_optimizer_policy(tmp_path, digits_dir, monkeypatch, policy):
    hparams = dataclasses.replace(LATE, pruning=PruningHparams(rewind_iteration=10, optimizer_state=policy))
    run = _run(tmp_path, digits_dir, hparams, levels=0)
    replicate = paths.replicate_dir(run, 0)
    saved = engine.state.load(paths.rewind_state(replicate))
    at_k = [saved[k] for k in sorted(saved) if k.startswith(engine.state.OPTIMIZER)]
    final = runner.build_model(hparams, 0)
    final.load_weights(paths.final_weights(paths.branch_dir(replicate, 0, "main")))
    starts = {}

    def record(model, data, hp, folder, *, start, label, **kw):
        starts[label.split()[-1]] = (start, [(v.path, v.numpy()) for v in model.optimizer.variables],
                                     float(model.optimizer.learning_rate), model.get_layer("fc1").kernel.numpy())
        return [{"step": start, "train_loss": None, "val_loss": 1.0, "val_acc": 0.1, "test_loss": 1.0,
                 "test_acc": 0.1}]
    monkeypatch.setattr(engine, "train", record)
    _run(tmp_path, digits_dir, hparams, levels=1)
    assert sorted(starts) == ["continue", "main", "random_prune", "reinit"]
    mask = io.read_masks(paths.level_masks(replicate, 1))["fc1"]
    for branch, (start, variables, lr, kernel) in starts.items():
        assert start == 10, branch  # every branch trains k..T
        assert lr == pytest.approx(1.2e-4), branch  # the schedule resumes at k, after the drop at 5
        slots = [value for path, value in variables if "momentum" in path or "velocity" in path]
        assert len(slots) == 12, branch
        if policy == "fresh":  # step 0 (Adam's bias correction starts afresh) and zero moments
            assert variables[0][1] == 0 and not any(v.any() for v in slots), branch
        else:  # the state saved at k: its step counter and moments together
            assert variables[0][1] == 10 and all(v.any() for v in slots), branch
            for (_, v), w in zip(variables, at_k):
                np.testing.assert_array_equal(v, w)
        rewound = np.asarray(saved[engine.state.MODEL + "fc1/kernel"])
        if branch in ("main", "continue"):  # rewound weights / the previous level's final weights, masked
            source = rewound if branch == "main" else final.get_layer("fc1").kernel
            np.testing.assert_array_equal(kernel, np.asarray(source) * mask)
        elif branch == "reinit":  # the same masks on freshly drawn weights, from the branch's own seed
            fresh = pruning.fresh_weights(runner.build_model(hparams, 0), seed=branches._branch_seed(0, 1, 1))[0]
            np.testing.assert_array_equal(kernel, fresh * mask)
            assert not np.allclose(kernel, rewound * mask)
        else:  # random_prune: the rewound weights under random masks of the same size
            random_mask = pruning.random_masks_like({"fc1": mask}, seed=branches._branch_seed(0, 1, 2))["fc1"]
            np.testing.assert_array_equal(kernel, rewound * random_mask)
            assert random_mask.sum() == mask.sum() and np.any(random_mask != mask)


def test_learning_rate_rewinding_retrains_the_previous_levels_weights(tmp_path, digits_dir, monkeypatch):
    hparams = dataclasses.replace(HPARAMS, pruning=PruningHparams(rewind_weights=False))
    run = _run(tmp_path, digits_dir, hparams, levels=0)
    replicate = paths.replicate_dir(run, 0)
    final = runner.build_model(hparams, 0)
    final.load_weights(paths.final_weights(paths.branch_dir(replicate, 0, "main")))
    starts = {}

    def record(model, data, hp, folder, *, start, label, **kw):
        starts[label.split()[-1]] = (int(model.optimizer.iterations.numpy()), model.get_layer("fc1").kernel.numpy())
        return [{"step": start, "train_loss": None, "val_loss": 1.0, "val_acc": 0.1, "test_loss": 1.0,
                 "test_acc": 0.1}]
    monkeypatch.setattr(engine, "train", record)
    _run(tmp_path, digits_dir, hparams, levels=1, controls=())
    step, kernel = starts["main"]
    mask = io.read_masks(paths.level_masks(replicate, 1))["fc1"]
    assert step == 0 and mask.mean() < 1  # a fresh optimizer, on pruned weights
    np.testing.assert_array_equal(kernel, final.get_layer("fc1").kernel.numpy() * mask)


def test_every_level_trains_k_to_t_after_one_pretraining(late):
    replicate = paths.replicate_dir(late, 0)
    pretrain = io.read_json(paths.metrics(paths.pretrain_dir(replicate)))["rows"]
    assert [r["step"] for r in pretrain] == [0, 10]
    assert not os.path.exists(paths.progress(paths.pretrain_dir(replicate)))
    first = _metrics(late, 0, "main")["rows"][0]  # level 0 starts from the rewind point itself
    assert (first["val_loss"], first["val_acc"]) == (pretrain[-1]["val_loss"], pretrain[-1]["val_acc"])
    for level, branch in [(0, "main"), (1, "main"), (1, "continue"), (1, "reinit")]:
        metrics = _metrics(late, level, branch)
        assert [r["step"] for r in metrics["rows"]] == [10, 20, 30, 40], (level, branch)
        assert metrics["early_stop_step"] > 10


def test_an_old_run_folder_is_refused_before_anything_is_written(tmp_path, digits_dir):
    run = runner.prepare_run_dir(HPARAMS, str(tmp_path))
    io.write_json(paths.hparams_file(run), HPARAMS.to_dict())  # as the format-1 code wrote it
    with pytest.raises(ValueError, match="format 1"):
        _run(tmp_path, digits_dir)
    assert sorted(os.listdir(run)) == ["flags.txt", "hparams.json"]


def test_workers_load_their_own_data(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        runner.run(HPARAMS, levels=0, root=str(tmp_path), data={"x": None}, workers=2, verbose=False)


def test_movement_is_measured_from_the_rewind_point(late):
    replicate = paths.replicate_dir(late, 0)
    model = runner.build_model(LATE, 0)
    model.load_weights(paths.final_weights(paths.branch_dir(replicate, 0, "main")))
    rewind = engine.state.load(paths.rewind_state(replicate))
    next_masks = io.read_masks(paths.level_masks(replicate, 1))
    moved = [np.abs(layer.kernel.numpy() - rewind[engine.state.MODEL + layer.kernel.path])[next_masks[layer.name] > 0]
             for layer in pruning.prunable_layers(model)]
    expected = float(np.concatenate(moved).mean())
    assert _metrics(late, 0, "main")["movement"]["kept"] == pytest.approx(expected, rel=1e-5)


def test_exclude_leaves_layers_unpruned(tmp_path, digits_dir):
    hparams = dataclasses.replace(HPARAMS, pruning=PruningHparams(exclude="output"))
    run = _run(tmp_path, digits_dir, hparams, levels=1, controls=())
    masks = io.read_masks(paths.level_masks(paths.replicate_dir(run, 0), 1))
    assert masks["output"].all() and masks["fc1"].mean() == pytest.approx(0.8)


def test_workers_train_branches_in_processes_with_the_same_results(tmp_path, digits_dir, late):
    run = _run(tmp_path, digits_dir, LATE, levels=1, workers=2)
    assert os.path.basename(run) == os.path.basename(late)
    for level, branch in [(0, "main"), (1, "main"), (1, "reinit"), (1, "random_prune"), (1, "continue")]:
        np.testing.assert_array_equal(_masks(run, level, branch)["fc2"], _masks(late, level, branch)["fc2"])
        ours, serial = _metrics(run, level, branch)["rows"], _metrics(late, level, branch)["rows"]
        assert [r["step"] for r in ours] == [r["step"] for r in serial]
        np.testing.assert_allclose([r["val_loss"] for r in ours], [r["val_loss"] for r in serial], rtol=1e-3)
    assert not [f for _, _, files in os.walk(run) for f in files if f.startswith(".tmp-")]


def _cli(args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, os.path.join(REPO, "recipes", "mnist_lth.py"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.parametrize("args,message", [
    (["--flagfile=missing.cfg"], "missing.cfg"),
    (["--no_such_flag=1"], "no_such_flag"),
    (["--levels=-1"], "--levels"),
    (["--iterations=100", "--eval_every=10", "--rewind_iteration=200"], "--rewind_iteration"),
    (["--branches=reinit,lucky"], "lucky"),
    (["--workers=0"], "--workers"),
    (["--optimizer_state=adam"], "--optimizer_state"),
    (["--exclude=fc9"], "--exclude"),
    (["--checkpoint_seconds=-1"], "--checkpoint_seconds"),
    (["--data_dir={empty}"], "train-images-idx3-ubyte"),
])
def test_cli_rejects_bad_input_with_one_line(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "runs"
    args = [a.format(empty=empty) for a in args]
    result = _cli([*args, f"--root={root}"], {"TFLTH_DATA_DIR": str(empty)})
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not root.exists()


def test_cli_quick_run_end_to_end(tmp_path, digits_dir):
    result = _cli(["--flagfile=recipes/flags/mnist_lth_quick.cfg", "--iterations=20", "--eval_every=10",
                   "--batch_size=20", "--validation_size=40", "--levels=1", f"--root={tmp_path}"],
                  {"TFLTH_DATA_DIR": digits_dir})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[seed 0 level 1 random_prune] step 20/20" in result.stdout
    run = result.stdout.split("done: ")[1].split()[0]
    assert os.path.exists(paths.metrics(paths.branch_dir(paths.replicate_dir(run, 0), 1, "reinit")))


def _die(seed, level, branch):
    os._exit(3)  # a worker killed mid-task (out of memory, a crash)


def test_a_dead_worker_stops_the_run(tmp_path, digits_dir):
    from tflth.lottery import parallel
    run = runner.prepare_run_dir(HPARAMS, str(tmp_path))
    with pytest.raises(Exception, match="terminated abruptly|BrokenProcessPool|process"):
        parallel.run_tasks([(0, 0, "main")], 2, HPARAMS, run, digits_dir, False, {}, target=_die)


def test_lottery_runs_on_the_l0_family(tmp_path, digits_dir):
    hparams = dataclasses.replace(HPARAMS, model=dataclasses.replace(HPARAMS.model, family="l0"))
    run = _run(tmp_path, digits_dir, hparams, levels=1, controls=("reinit",))
    assert _metrics(run, 1, "main")["weights_remaining"] < 100
    model = runner.build_model(hparams, 0)
    assert model.get_layer("fc1").dataset_size == 60_000 - 40  # the L0 penalty is scaled per training example
    assert runner.Replicate(hparams, run, 0, {"y": np.zeros(200)}, verbose=False).model.get_layer(
        "fc1").dataset_size == 200  # the runner divides by the examples it really trains on
    assert np.asarray(_masks(run, 1)["fc1"]).mean() < 1
