"""Runs that fail loudly and early (`tflth.failures`): non-finite flags and losses, damaged
files, a full disk, SIGTERM and kill -9 (with and without workers), two processes on one run,
and writes killed mid-way. Every failure is one line naming the flag or file, nothing is
recorded as finished, and the same command afterwards resumes to what an uninterrupted run
gives."""
import dataclasses
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags

from tflth import cli, failures, io, runs
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.lottery import paths, runner
from tflth.lottery.hparams import SECTIONS as LOTTERY_SECTIONS
from tflth.lottery.hparams import LotteryHparams
from tflth.trainer.hparams import SECTIONS as TRAINER_SECTIONS
from tflth.tuning.search import SearchHparams

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HPARAMS = LotteryHparams(DatasetHparams(batch_size=20, validation_size=40),
                         training=TrainingHparams(iterations=40, eval_every=10))
QUICK = ["--iterations=40", "--eval_every=10", "--batch_size=20", "--validation_size=40", "--levels=1"]


def _recipe(name, args, digits_dir, **popen):
    command = [sys.executable, os.path.join(REPO, "recipes", name), *args]
    env = {**os.environ, "TFLTH_DATA_DIR": digits_dir}
    if popen:
        return subprocess.Popen(command, env=env, cwd=REPO, text=True, **popen)
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def _one_error(result, *fragments):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _replicate(run, seed=0):
    return paths.replicate_dir(run, seed)


def _branch(run, level, branch="main"):
    return paths.branch_dir(_replicate(run), level, branch)


# Non-finite and negative numbers -------------------------------------------------------------

def _command_lines():
    from tflth.ablation import cli as ablation
    from tflth.lottery import cli as lottery
    from tflth.trainer import cli as trainer
    from tflth.tuning import cli as tuning
    return {"lottery": lottery.define_run_flags, "trainer": trainer.define_run_flags,
            "ablation": ablation.define_run_flags, "tune": lambda fv: tuning.define_run_flags(fv),
            "tune_lottery": lambda fv: tuning.define_run_flags(fv, lottery=True)}


@pytest.mark.parametrize("name", ["lottery", "trainer", "ablation", "tune", "tune_lottery"])
def test_every_float_flag_of_every_command_refuses_nan_and_infinities(name, capsys):
    flag_values = flags.FlagValues()
    _command_lines()[name](flag_values)
    floats = [n for n in flag_values if isinstance(flag_values[n].default, float)]
    assert "lr" in floats and "checkpoint_seconds" in floats
    for flag in floats:
        for bad in ("nan", "inf", "-inf"):
            flag_values.unparse_flags()
            with pytest.raises(SystemExit) as exit_info:
                cli.parse(flag_values)(["prog", f"--{flag}={bad}"])
            assert exit_info.value.code == 2
            assert capsys.readouterr().err.strip() == f"error: --{flag}={float(bad)}: must be a finite number"


@pytest.mark.parametrize("cls", [*LOTTERY_SECTIONS, *TRAINER_SECTIONS, SearchHparams], ids=lambda c: c.__name__)
def test_every_float_field_of_every_hparams_section_refuses_nan_and_infinities(cls):
    numbers = [f.name for f in dataclasses.fields(cls) if f.type in (float, "float")]
    for name in numbers:
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match=f"^--{name}={bad}: must be a finite number$"):
                cls(**{name: bad})


@pytest.mark.parametrize("kw,flag", [({"lr_gamma": -5.0, "lr_drops": "10"}, "lr_gamma"), ({"lr_gamma": 0.0}, "lr_gamma"),
                                     ({"momentum": 1.0}, "momentum"), ({"momentum": -0.1}, "momentum")])
def test_negative_or_runaway_training_numbers_are_refused(kw, flag):
    with pytest.raises(ValueError, match=f"^--{flag}="):
        TrainingHparams(iterations=100, eval_every=10, **kw)


def test_control_levels_must_be_levels_with_controls():
    for bad in ([0], [3]):
        with pytest.raises(ValueError, match=r"^--control_levels=.*: each must be a level in \[1, --levels=2\]"):
            runner.check_run_args(HPARAMS, 2, ("reinit",), control_levels=bad)


def test_comma_separated_numbers_refuse_nan():
    assert cli.csv("10, 2.5", float) == [10.0, 2.5]
    for bad in ("nan", "5,inf"):
        with pytest.raises(ValueError):
            cli.csv(bad, float)


@pytest.mark.parametrize("recipe,args,flag", [
    ("mnist_l0.py", ["--flagfile=recipes/flags/mnist_l0_neuron.cfg", "--strength=inf"], "--strength"),
    ("mnist_lth.py", ["--lr=nan"], "--lr"),
    ("mnist_lth.py", ["--lr_drops=10", "--lr_gamma=-5"], "--lr_gamma"),
    ("ablation.py", ["--methods=imp", "--keep=nan"], "--keep"),
])
def test_a_recipe_refuses_a_bad_number_in_one_line_before_writing(recipe, args, flag, tmp_path, digits_dir):
    result = _recipe(recipe, [*args, *QUICK[:4], f"--root={tmp_path / 'runs'}"], digits_dir)
    assert result.returncode == 2
    _one_error(result, flag)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("failure", [failures.DamagedFile("/runs/x/masks.npz", "Bad CRC-32", "remove it"),
                                     failures.DamagedFile("/runs/x/rewind.npz", "empty"),
                                     failures.NonFiniteLoss("nan"), failures.RunBusy("busy"), failures.DiskFull("full")])
def test_failures_cross_from_a_worker_to_its_parent_whole(failure):
    """--workers: a task's exception is pickled to the parent, which reports it in one line."""
    again = pickle.loads(pickle.dumps(failure))
    assert type(again) is type(failure) and str(again) == str(failure)
    assert not isinstance(failure, RuntimeError)  # bad-input checks, which catch those, let it through


# A loss that becomes non-finite --------------------------------------------------------------

def test_a_diverging_training_stops_at_once_names_its_flags_and_is_never_finished(tmp_path, digits_dir):
    args = ["--flagfile=recipes/flags/mnist_lth_quick.cfg", *QUICK, "--lr=1e9", f"--root={tmp_path}"]
    result = _recipe("mnist_lth.py", args, digits_dir)
    assert result.returncode == 1
    line = _one_error(result, "level 0 main", "became nan by step 10", "--lr=1000000000.0")
    run = next(p for p in tmp_path.iterdir() if p.name.startswith("lottery_"))
    assert not os.path.exists(paths.metrics(_branch(str(run), 0)))
    assert os.path.exists(os.path.join(_branch(str(run), 0), "diverged.txt"))
    again = _recipe("mnist_lth.py", args, digits_dir)  # says so, instead of skipping or retraining
    assert again.returncode == 1
    _one_error(again, "diverged before", line[len("error: "):], "remove")


# Damaged files -------------------------------------------------------------------------------

def _damage(path, how):
    raw = open(path, "rb").read()
    data = {"truncate": raw[:len(raw) // 2], "empty": b"",
            "flip": raw[:len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0x10]) + raw[len(raw) // 2 + 1:]}[how]
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("how", ["truncate", "empty", "flip"])
def test_damaged_state_files_are_named(tmp_path, how):
    npz, text = str(tmp_path / "state.npz"), str(tmp_path / "metrics.json")
    io.write_npz(npz, {"w": np.arange(5000, dtype=np.float32)}, compress=False)
    io.write_json(text, {"rows": list(range(100))})
    _damage(npz, how)
    with pytest.raises(failures.DamagedFile, match=f"^{npz} is damaged .*; remove it and rerun"):
        io.read_npz(npz)
    if how != "flip":  # a flipped digit can still be JSON: its checks are the readers' own
        _damage(text, how)
        with pytest.raises(failures.DamagedFile, match=f"^{text} is damaged"):
            io.read_json(text)
    with pytest.raises(FileNotFoundError):  # missing is not damaged
        io.read_npz(str(tmp_path / "missing.npz"))


def test_damaged_files_of_a_run_name_themselves_and_the_advice_repairs_the_run(tmp_path, digits_dir):
    run = runner.run(HPARAMS, levels=1, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    finished = {b: io.read_json(paths.metrics(_branch(run, 1, b))) for b in paths.BRANCHES}
    # The level-1 masks, written by the level-0 ticket's pruning: the advice names both files.
    for branch in paths.BRANCHES:
        os.remove(paths.metrics(_branch(run, 1, branch)))
    _damage(paths.level_masks(_replicate(run), 1), "flip")
    with pytest.raises(failures.DamagedFile) as error:
        runner.run(HPARAMS, levels=1, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    ticket = paths.metrics(_branch(run, 0))
    assert str(error.value).startswith(f"{paths.level_masks(_replicate(run), 1)} is damaged (Bad CRC-32")
    assert str(error.value).endswith(f"remove it and {ticket}, then rerun the same command to write it again")
    os.remove(paths.level_masks(_replicate(run), 1))
    os.remove(ticket)
    runner.run(HPARAMS, levels=1, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    for branch in paths.BRANCHES:  # deterministic: the repaired run is the first one
        repaired = io.read_json(paths.metrics(_branch(run, 1, branch)))
        assert (repaired["rows"], repaired["test_correct"]) == (finished[branch]["rows"], finished[branch]["test_correct"])
    # Final weights carry no checksum of their own: the one their metrics recorded tells, and
    # the advice trains them again.
    weights, ticket_metrics = paths.final_weights(_branch(run, 0)), paths.metrics(_branch(run, 0))
    _damage(weights, "flip")
    model = runner.build_model(HPARAMS, 0)
    with pytest.raises(failures.DamagedFile) as error:
        runs.load_final_weights(model, _branch(run, 0))
    assert str(error.value) == (f"{weights} is damaged (its SHA-256 is not the one recorded when it was written); "
                                f"remove it and {ticket_metrics}, then rerun the command that trained it")
    _damage(weights, "truncate")  # HDF5 itself refuses it
    with pytest.raises(failures.DamagedFile, match=f"^{weights} is damaged \\(Unable to "):
        io.load_weights(model, weights)
    os.remove(weights)
    os.remove(ticket_metrics)
    runner.run(HPARAMS, levels=1, root=str(tmp_path), data_dir=digits_dir, verbose=False)
    runs.load_final_weights(model, _branch(run, 0))
    # A hparams.json that holds no run's hyperparameters.
    io.write_json(paths.hparams_file(run), ["not", "hparams"])
    with pytest.raises(failures.DamagedFile, match=f"^{paths.hparams_file(run)} is damaged \\(not the hyperparameters "
                                                   "of a LotteryHparams.*remove it and rerun the same command"):
        runner.check_run_dir(HPARAMS, str(tmp_path))


def test_a_damaged_file_ends_a_recipe_in_one_line(tmp_path, digits_dir):  # the advice: tested above
    args = ["--flagfile=recipes/flags/mnist_lth_quick.cfg", *QUICK, "--branches=", f"--root={tmp_path}"]
    assert _recipe("mnist_lth.py", args, digits_dir).returncode == 0
    run = str(next(p for p in tmp_path.iterdir() if p.name.startswith("lottery_")))
    metrics = paths.metrics(_branch(run, 1))
    _damage(metrics, "truncate")
    result = _recipe("mnist_lth.py", args, digits_dir)
    assert result.returncode == 1
    _one_error(result, f"{metrics} is damaged", "remove it and rerun the same command")


# A full disk ---------------------------------------------------------------------------------

def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    def full(file, **arrays):
        with open(file, "wb") as f:
            f.write(b"x" * 200_000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", full)
    target = str(tmp_path / "progress.npz")
    with pytest.raises(failures.DiskFull, match=f"^disk full writing {target} \\(.* MB free there, and the file "
                                                "needed more than 0.2 MB\\); free some space and rerun"):
        io.write_npz(target, {"w": np.zeros(3)}, compress=False)
    assert os.listdir(tmp_path) == []


def test_a_full_disk_met_by_tensorflow_is_recognised_by_its_message():
    error = RuntimeError("ResourceExhaustedError: /runs/x/tb/events.out; No space left on device")
    assert failures.no_space(error) is error
    assert failures.no_space(RuntimeError("out of memory")) is None
    assert str(failures.disk_full(None)).startswith("disk full (no space left on device); free some space")


def test_a_full_disk_anywhere_is_one_line_from_a_command(capsys):
    def main(argv):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/tb/events")
        except OSError as e:
            raise RuntimeError("TensorBoard could not write") from e
    with pytest.raises(SystemExit) as exit_info:
        cli._guarded(main, ["prog"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("error: disk full writing /runs/x/tb/events (")


# Two processes on one run --------------------------------------------------------------------

HOLD = "import sys, time\nfrom tflth import runs\nwith runs.claim(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"


def test_a_second_process_on_a_run_is_refused_until_the_first_ends(tmp_path, digits_dir):
    run = runner.prepare_run_dir(HPARAMS, str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, _replicate(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(failures.RunBusy, match=f"^{_replicate(run)} is being trained by another process "
                                                    f"\\(pid {holder.pid} on .*\\); wait for it to end"):
            runner.run(HPARAMS, levels=0, root=str(tmp_path), data_dir=digits_dir, verbose=False)
        assert not os.path.exists(paths.level_masks(_replicate(run), 0))  # nothing written
    finally:
        holder.kill()
        holder.wait()
    runner.run(HPARAMS, levels=0, root=str(tmp_path), data_dir=digits_dir, verbose=False)  # released, even by kill -9
    assert os.path.exists(paths.metrics(_branch(run, 0)))


def test_claims_nest_in_one_process_and_clear_leftovers_of_killed_writes(tmp_path):
    folder = tmp_path / "replicate_0"
    (folder / "level_0" / "main").mkdir(parents=True)
    leftover = folder / "level_0" / "main" / ".tmp-abc.npz"
    leftover.write_bytes(b"half")
    (folder / "level_0" / "main" / "progress.npz").write_bytes(b"kept")
    with runs.claim(str(folder)):
        assert not leftover.exists() and (folder / "level_0" / "main" / "progress.npz").exists()
        with runs.claim(str(folder)):
            pass
        still = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(folder)],
                               cwd=REPO, capture_output=True, text=True)
        assert "is being trained by another process" in still.stderr  # the inner release kept the lock
    done = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(folder)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.stdout.strip() == "held", done.stderr


# Interruptions: kill -9 anywhere, SIGTERM with workers ----------------------------------------

def _finished(root):
    """{(level, branch): (rows, final weights, per-example results, masks)} of a LeNet-300-100
    lottery run, and the .tmp-* files left in it."""
    run = str(next(p for p in root.iterdir() if p.name.startswith("lottery_")))
    model, out = runner.build_model(HPARAMS, 0), {}
    for level in (0, 1):
        for branch in sorted(os.listdir(paths.level_dir(_replicate(run), level))):
            if branch.endswith(".npz"):
                continue
            metrics = io.read_json(paths.metrics(_branch(run, level, branch)))
            masks = io.read_masks(paths.branch_masks(_branch(run, level, branch)))
            runs.load_final_weights(model, _branch(run, level, branch))
            out[level, branch] = (json.dumps(metrics["rows"]), [w.tobytes() for w in model.get_weights()],
                                  metrics["test_correct"], {k: v.tolist() for k, v in masks.items()})
    leftovers = [f for _, _, files in os.walk(run) for f in files if f.startswith(".tmp-")]
    return out, leftovers


def _interrupted(digits_dir, root, *how):
    return subprocess.run([sys.executable, os.path.join(HERE, "interrupted_run.py"), digits_dir, str(root), *how],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_killed_in_pretraining_mid_interval_and_inside_a_write_the_run_resumes_bit_for_bit(tmp_path, digits_dir):
    assert _interrupted(digits_dir, tmp_path / "whole").returncode == 0
    killed = tmp_path / "killed"
    for how in ("pretrain:2", "training:6", "write:6"):  # each process dies once, somewhere new
        result = _interrupted(digits_dir, killed, how)
        assert result.returncode == 9, (how, result.stderr[-2000:])
        if how == "training:6":  # mid-interval: the next process resumes from the checkpoint at step 40
            progress = [os.path.join(d, f) for d, _, files in os.walk(killed) for f in files if f == "progress.npz"]
            assert len(progress) == 1 and int(io.read_npz(progress[0])["step"]) == 40
    assert [f for _, _, files in os.walk(killed) for f in files if f.startswith(".tmp-")]  # the write's leftover
    assert _interrupted(digits_dir, killed).returncode == 0
    whole, _ = _finished(tmp_path / "whole")
    resumed, leftovers = _finished(killed)
    assert resumed == whole and not leftovers


def _descendants(pid):
    """The processes `pid` started, and theirs (Linux /proc)."""
    parent = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = set(), [pid]
    while todo:
        pid = todo.pop()
        children = {child for child, p in parent.items() if p == pid}
        found |= children
        todo += children
    return found


def _command(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


WORKER_ARGS = ["--flagfile=recipes/flags/mnist_lth_quick.cfg", "--iterations=400", "--eval_every=100",
               "--batch_size=20", "--validation_size=40", "--levels=1"]


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory, digits_dir):
    root = tmp_path_factory.mktemp("serial")
    result = _recipe("mnist_lth.py", [*WORKER_ARGS, f"--root={root}"], digits_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return _finished(root)[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_run_with_workers_leaves_no_process_and_resumes_to_the_serial_result(
        signum, tmp_path, digits_dir, serial_run):
    args = [*WORKER_ARGS, "--workers=2", f"--root={tmp_path / 'runs'}"]
    with open(tmp_path / "stderr", "w") as errors:  # a file: a pipe nobody reads could fill and block
        parent = _recipe("mnist_lth.py", args, digits_dir, stdout=subprocess.PIPE, stderr=errors)
        try:
            for line in parent.stdout:  # stop it mid-training, with both workers busy
                if "level 1" in line and "step" in line:
                    break
            workers = _descendants(parent.pid)
            assert sum("spawn_main" in _command(pid) for pid in workers) == 2
            parent.send_signal(signum)
            parent.wait(timeout=30)
        finally:
            parent.kill()
    stderr = (tmp_path / "stderr").read_text()
    if signum == signal.SIGTERM:
        assert parent.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr[-3000:]
        assert stderr.strip().splitlines()[-1] == "[tflth] stopped by SIGTERM; rerun the same command to resume"
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)]
    result = _recipe("mnist_lth.py", args, digits_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    resumed, leftovers = _finished(tmp_path / "runs")
    assert not leftovers
    for key, (rows, _, _, masks) in serial_run.items():  # workers compute like the serial run, to rounding
        assert resumed[key][3] == masks, key
        ours, theirs = json.loads(resumed[key][0]), json.loads(rows)
        assert [r["step"] for r in ours] == [r["step"] for r in theirs]
        np.testing.assert_allclose([r["val_loss"] for r in ours], [r["val_loss"] for r in theirs], rtol=1e-3)


# Searches ------------------------------------------------------------------------------------

def test_a_search_fails_a_diverging_trial_and_stops_on_any_other_run_failure(tmp_path, digits_dir, monkeypatch):
    from tflth.trainer.hparams import ModelHparams, SparsityHparams
    from tflth.tuning import search
    from tflth.tuning.hypermodel import SparseHyperModel, StoppedByFailure

    def tune(lr):
        return search.TuneHparams(HPARAMS.dataset, ModelHparams(), TrainingHparams(iterations=20, eval_every=10, lr=lr),
                                  SparsityHparams(penalty="none", prune_score="magnitude", prune_to=50.0, prune_every=5),
                                  search.SearchHparams(search="prune_to=float:5:50"))
    data = runs.load_data(tune(1e-3).base, digits_dir)
    _, rows, _ = search.run(tune(1e9), max_trials=1, root=str(tmp_path / "a"), data=data, export="none", verbose=False)
    assert [r["status"] for r in rows] == ["FAILED"]  # a result of the search, which goes on

    def busy(self, *args, **kwargs):
        raise failures.RunBusy("runs/sparse_x/seed_0 is being trained by another process")
    monkeypatch.setattr(SparseHyperModel, "_train", busy)
    with pytest.raises(StoppedByFailure) as stopped:  # not a failed trial: the command reports it
        search.run(tune(1e-3), max_trials=3, root=str(tmp_path / "b"), data=data, export="none", verbose=False)
    assert isinstance(stopped.value.failure, failures.RunBusy)
