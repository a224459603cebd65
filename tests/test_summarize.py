"""tflth summarize (tflth.summary) on a fake, partial lottery-ticket run folder with known numbers."""
import base64
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tflth import stats
from tflth.summary import cli as summarize
from tflth.summary.imp_comparison import read_lottery
from tflth.summary.lottery import aggregate, missing
from tflth.summary.markdown import _architecture_cell, to_markdown
from tflth.summary.plots import PRIOR_MARKERS, _label, _marker, _spread_ticks, _ticks, plot, plot_sparse
from tflth.summary.read import collect, run_kind
from tflth.summary.sparse import _differing, _method, aggregate_sparse, hidden_kept, seed_list

# (seed, level, branch) -> (weights_remaining, early_stop_step, early_stop_test_acc, final_test_acc)
# Partial on purpose: seed 1 has no level 2; random_prune exists only for seed 0 at level 1.
FAKE = {
    (0, 0, "main"): (100.0, 10000, 0.98, 0.975),
    (1, 0, "main"): (100.0, 12000, 0.97, 0.969),
    (0, 1, "main"): (51.3, 8000, 0.985, 0.98),
    (1, 1, "main"): (51.3, 9000, 0.981, 0.98),
    (0, 1, "reinit"): (51.3, 14000, 0.96, 0.95),
    (1, 1, "reinit"): (51.3, 15000, 0.95, 0.95),
    (0, 1, "random_prune"): (51.3, 16000, 0.955, 0.95),
    (0, 2, "main"): (21.1, 7000, 0.97, 0.96),
    (0, 2, "reinit"): (21.1, 20000, 0.90, 0.89),
}


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))


def _metrics(seed, level, branch, wr, step, acc, final):
    rows = [{"step": s, "train_loss": None if s == 0 else 0.1, "val_loss": 0.1, "val_acc": acc,
             "test_loss": 0.1, "test_acc": 0.1 + (acc - 0.1) * s / 20000} for s in range(0, 20001, 2500)]
    return {"level": level, "branch": branch, "seed": seed, "weights_remaining": wr,
            "sparsity": {"total": 1 - wr / 100}, "rows": rows, "early_stop_step": step,
            "early_stop_test_acc": acc, "final_test_acc": final, "mask_overlap_prev": None}


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    _write(str(run / "hparams.json"), {"dataset": {"dataset": "mnist"}, "model": {"model": "lenet_300_100"},
                                        "training": {}, "pruning": {}})
    for (seed, level, branch), values in FAKE.items():
        _write(str(run / f"replicate_{seed}" / f"level_{level}" / branch / "metrics.json"),
               _metrics(seed, level, branch, *values))
    # Noise the tool must ignore: a branch still running, a stray folder.
    os.makedirs(run / "replicate_1" / "level_1" / "continue")
    os.makedirs(run / "replicate_x" / "level_0" / "main")
    return str(run)


def test_collect_reads_only_existing_metrics(run):
    records = collect(run)
    assert [(r["seed"], r["level"], r["branch"]) for r in records] == [
        (0, 0, "main"), (1, 0, "main"), (0, 1, "main"), (1, 1, "main"), (0, 1, "reinit"),
        (1, 1, "reinit"), (0, 1, "random_prune"), (0, 2, "main"), (0, 2, "reinit")]


def test_aggregate_means_and_stds(run):
    rows = aggregate(collect(run))
    assert [r["level"] for r in rows] == [0, 1, 2]
    assert [r["weights_remaining"] for r in rows] == [100.0, 51.3, 21.1]
    assert [r["seeds"] for r in rows] == [[0, 1], [0, 1], [0]]
    l0, l1, l2 = rows
    assert list(l0["branches"]) == ["main"]
    assert list(l1["branches"]) == ["main", "reinit", "random_prune"]
    step = l0["branches"]["main"]["early_stop_step"]
    half = 12.706 * 1000  # t(0.975, 1 df) * std / sqrt(2)
    assert step == {"mean": 11000.0, "std": pytest.approx(1000 * math.sqrt(2)), "min": 10000.0,
                    "max": 12000.0, "n": 2, "ci": pytest.approx([11000 - half, 11000 + half])}
    acc = l1["branches"]["main"]["early_stop_test_acc"]  # percent, sample std (ddof=1)
    assert acc["mean"] == pytest.approx(98.3) and acc["std"] == pytest.approx(0.4 / math.sqrt(2))
    assert l1["branches"]["reinit"]["early_stop_test_acc"]["mean"] == pytest.approx(95.5)
    one = l1["branches"]["random_prune"]["early_stop_test_acc"]
    assert one["n"] == 1 and one["std"] is None and one["mean"] == pytest.approx(95.5)
    assert l0["branches"]["main"]["final_test_acc"]["mean"] == pytest.approx(97.2)
    assert l0["ticket_vs_dense"] == 0.0
    assert l1["ticket_vs_dense"] == pytest.approx(0.8)
    assert l2["ticket_vs_dense"] == pytest.approx(-0.5)


def test_missing_lists_gaps(run):
    assert missing(collect(run)) == [
        "seed 0 level 2: random_prune", "seed 1 level 1: random_prune",
        "seed 1 level 2: main, reinit, random_prune"]


def test_markdown_formatting(run):
    records = collect(run)
    md = to_markdown(aggregate(records), missing(records), "LeNet")
    lines = md.splitlines()
    assert lines[0] == "# LeNet"
    assert ("| Level | Weights % | Ticket ES iter | Winning ticket ES acc % | Random reinit ES acc % "
            "| Random prune ES acc % | Ticket Δ vs dense (pp) | Seeds |") in lines
    assert "| 0 | 100.0 | 11000 ± 1414 [-1706, 23706] | 97.50 ± 0.71 [91.15, 103.85] | — | — | +0.00 | 2 |" \
        in lines  # [95% t interval of the mean]: t(0.975, 1 df) = 12.706 for 2 seeds
    assert ("| 1 | 51.3 | 8500 ± 707 [2147, 14853] | 98.30 ± 0.28 [95.76, 100.84] | 95.50 ± 0.71 [89.15, 101.85] "
            "| 95.50 (n=1) | +0.80 | 2 |") in lines
    assert "| 2 | 21.1 | 7000 | 97.00 | 90.00 | — | -0.50 | 1 |" in lines
    assert "down to 51.3% weights remaining (level 1)" in md
    assert "- seed 1 level 2: main, reinit, random_prune" in lines


def test_plot_writes_pngs(run, tmp_path):
    records = collect(run)
    out = tmp_path / "plots"
    out.mkdir()
    written = plot(aggregate(records), str(out), "lenet_300_100 on mnist", records)
    assert sorted(os.path.basename(p) for p in written) == ["accuracy.png", "curves.png", "early_stop.png"]
    for path in written:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 5000
    assert sorted(os.listdir(out)) == ["accuracy.png", "curves.png", "early_stop.png"]  # no temp files


def test_ticks_are_actual_percentages_thinned():
    assert _ticks([100.0, 51.3, 21.1]) == [100.0, 51.3, 21.1]
    assert _ticks([100.0]) == [100.0]
    dense = [100 * 0.8 ** k for k in range(20)]  # 20% per level: labels would collide
    ticks = _ticks(dense)
    assert ticks[0] == 100.0 and ticks[-1] == round(dense[-1], 2) and len(ticks) == 8
    assert set(ticks) <= {round(x, 2) for x in dense}
    assert [_label(x) for x in (100.0, 51.3, 0.47)] == ["100", "51.3", "0.47"]


def test_the_clone_script_runs_the_command(tmp_path):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "summarize.py")
    result = subprocess.run([sys.executable, script, str(tmp_path / "nothing")], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 2 and result.stderr.startswith(f"summarize: {tmp_path / 'nothing'}: not a directory")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tflth", "summarize", *args], capture_output=True, text=True, timeout=600)


def test_main_writes_everything(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert summarize.main([run, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "| 1 | 51.3 | 8500 ± 707 [2147, 14853] |" in stdout
    assert sorted(os.listdir(out)) == ["accuracy.png", "curves.png", "early_stop.png",
                                       "summary.json", "summary.md"]
    assert (out / "summary.md").read_text() == stdout
    assert oct(os.stat(out / "summary.md").st_mode & 0o777) == "0o644"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["title"] == "lenet_300_100 on mnist"
    assert summary["levels"][1]["branches"]["main"]["early_stop_step"]["mean"] == 8500.0
    assert summary["missing"][-1] == "seed 1 level 2: main, reinit, random_prune"


def test_main_defaults_out_to_run_folder(run, capsys):
    assert summarize.main([run, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["levels"][2]["seeds"] == [0]
    for name in ("accuracy.png", "early_stop.png", "curves.png", "summary.md", "summary.json"):
        assert os.path.getsize(os.path.join(run, name)) > 0
    assert not [n for n in os.listdir(run) if n.startswith(".")]  # no temp files left


@pytest.mark.parametrize("case", ["absent", "empty", "corrupt", "no_accuracy_field"])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, case):
    run = tmp_path / "run"
    bad = run / "replicate_0" / "level_0" / "main" / "metrics.json"
    if case != "absent":
        run.mkdir()
    if case == "corrupt":
        _write(str(bad), '{"level": 0, "weights_rem')
    if case == "no_accuracy_field":
        _write(str(bad), json.dumps({"level": 0, "early_stop_test_acc": 0.9}))
    before = sorted(p for p in tmp_path.rglob("*"))
    result = _cli(str(run), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert (str(bad) if case in ("corrupt", "no_accuracy_field") else str(run)) in result.stderr
    assert result.stdout == ""
    assert sorted(p for p in tmp_path.rglob("*")) == before


# ---------------------------------------------------------------------------------------------
# Sparse-training run folders (tflth.trainer.runner): <root>/sparse_<hash>/seed_<s>/metrics.json

# folder -> (hparams.sparsity, {seed: (weights_remaining, final_test_acc, early_stop_test_acc, neurons, pruned)})
# pruned = (weights_remaining, test_acc) or None. Partial on purpose: sparse_bbb has seed_2 still running.
SPARSE = {
    "sparse_aaa": ({"penalty": "l0", "strength": 0.1, "gates": "neuron", "keep_percent": 0.0}, {
        0: (10.0, 0.98, 0.981, "266-88-33", None),
        1: (12.0, 0.97, 0.975, "270-90-30", None),
        2: (14.0, 0.99, 0.985, "266-88-33", None)}),
    "sparse_bbb": ({"penalty": "l1", "strength": 1.0, "gates": "neuron", "keep_percent": 5.0}, {
        0: (100.0, 0.985, 0.99, "784-300-100", (5.0, 0.96)),
        1: (100.0, 0.975, 0.98, "784-300-100", (5.0, 0.94))}),
}


def test_hidden_units_kept_counts_the_units_after_the_inputs():
    assert hidden_kept("208-135-51", "784-300-100") == pytest.approx(46.5)
    assert hidden_kept(None, "784-300-100") is None and hidden_kept("5", "9") is None


def _architecture(neurons, kept):
    return {"neurons": neurons, "original": "784-300-100", "weights_kept": kept, "flops": 1000,
            "expected_flops": 1000.0, "layers": []}


def _sparse_metrics(seed, sparsity, wr, final, es, neurons, pruned):
    rows = [{"step": s, "train_loss": 0.1, "val_loss": 0.1, "val_acc": es, "test_loss": 0.1, "test_acc": final}
            for s in (0, 100, 200)]
    return {"seed": seed, "penalty": sparsity["penalty"], "strength": sparsity["strength"], "rows": rows,
            "seconds": 1.0, "early_stop_step": 100, "early_stop_test_acc": es, "early_stop_val_loss": 0.1,
            "final_test_acc": final, "weights_remaining": wr, "architecture": _architecture(neurons, wr),
            "pruned": None if pruned is None else {"keep_percent": sparsity["keep_percent"],
                                                   "weights_remaining": pruned[0], "test_acc": pruned[1],
                                                   "architecture": _architecture("700-250-90", pruned[0])}}


def _sparse_run(root, name, sparsity, seeds, **training):
    run = root / name
    _write(str(run / "hparams.json"), {"format": 1, "dataset": {"dataset": "mnist", "batch_size": 100},
                                        "model": {"model": "lenet_300_100"},
                                        "training": {"iterations": 1000, **training},
                                        "sparsity": {"gate_l2": 0.0, "droprate_init": 0.5, "per_layer": "",
                                                     **sparsity}})
    for seed, values in seeds.items():
        _write(str(run / f"seed_{seed}" / "metrics.json"), _sparse_metrics(seed, sparsity, *values))
    return str(run)


@pytest.fixture
def sparse_runs(tmp_path):
    runs = [_sparse_run(tmp_path / "runs", name, sparsity, seeds) for name, (sparsity, seeds) in SPARSE.items()]
    os.makedirs(os.path.join(runs[1], "seed_2", "tb"))  # running: no metrics.json yet
    return runs


def _table(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ")]


def test_kinds_are_detected(run, sparse_runs, tmp_path):
    assert run_kind(run) == "lottery"
    assert [run_kind(r) for r in sparse_runs] == ["sparse", "sparse"]
    os.makedirs(tmp_path / "sparse_fresh")  # just created by the runner: known by its name
    assert run_kind(str(tmp_path / "sparse_fresh")) == "sparse"
    assert run_kind(str(tmp_path / "nothing_here")) is None


def test_sparse_two_folders_one_table(sparse_runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert summarize.main([*reversed(sparse_runs), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["sparsity.png", "summary.json", "summary.md"]
    assert (out / "summary.md").read_text() == stdout
    assert stdout.startswith("# lenet_300_100 on mnist\n")
    assert _table(stdout) == [  # sorted by penalty whatever the order given; one row per folder
        "| Penalty | Strength | Seeds | Weights kept % | Architecture (of 784-300-100) | Hidden units kept % "
        "| Test error % | ES test error % | Pruned: weights kept % | Pruned: test error % |",
        "| l0 (neuron gates) | 0.1 | 3 (0-2) | 12.00 ± 2.00 | 266-88-33, 270-90-30 | 30.2 ± 0.1 | 2.00 ± 1.00 "
        "[-0.48, 4.48] | 1.97 ± 0.50 [0.72, 3.22] | — | — |",  # test errors with their 95% t interval
        "| l1 | 1 | 2 (0-1) | 100.00 ± 0.00 | 784-300-100 | 100.0 ± 0.0 | 2.00 ± 0.71 [-4.35, 8.35] "
        "| 1.50 ± 0.71 [-4.85, 7.85] | 5.00 ± 0.00 | 5.00 ± 1.41 [-7.71, 17.71] |"]
    assert f"Run folders: `{sparse_runs[1]}`, `{sparse_runs[0]}`" in stdout  # as given
    assert "- l1, strength 1 (sparse_bbb): unfinished seed 2" in stdout.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    l0, l1 = summary["variants"]
    assert (l0["penalty"], l0["gates"], l0["strength"], l0["seeds"]) == ("l0", "neuron", 0.1, [0, 1, 2])
    half = 4.303 * 2.0 / math.sqrt(3)  # t(0.975, 2 df) * std / sqrt(n)
    assert l0["weights_kept"] == {"mean": 12.0, "std": 2.0, "min": 10.0, "max": 14.0, "n": 3,
                                  "ci": pytest.approx([12.0 - half, 12.0 + half])}
    assert l0["final_test_error"]["mean"] == pytest.approx(2.0)
    assert l0["final_test_error"]["std"] == pytest.approx(1.0)  # sample std (ddof=1)
    assert l0["architecture"]["neurons"] == ["266-88-33", "270-90-30", "266-88-33"]
    assert l0["pruned"] is None
    assert (l1["gates"], l1["seeds"], l1["unfinished_seeds"]) == (None, [0, 1], [2])
    assert l1["final_test_error"]["std"] == pytest.approx(math.sqrt(0.5))
    assert l1["pruned"]["keep_percent"] == 5.0 and l1["pruned"]["seeds"] == [0, 1]
    assert l1["pruned"]["test_error"]["mean"] == pytest.approx(5.0)
    assert l1["pruned"]["test_error"]["std"] == pytest.approx(math.sqrt(2))
    assert summary["run_dirs"] == [os.path.normpath(r) for r in reversed(sparse_runs)]


def test_sparse_pruned_columns_only_when_present(sparse_runs, capsys):
    assert summarize.main([sparse_runs[0], "--format", "json"]) == 0  # default --out: the (first) folder
    assert json.loads(capsys.readouterr().out)["variants"][0]["pruned"] is None
    markdown = open(os.path.join(sparse_runs[0], "summary.md")).read()
    assert "Pruned" not in markdown and "Other settings" not in markdown
    assert len(_table(markdown)) == 2
    assert os.path.getsize(os.path.join(sparse_runs[0], "sparsity.png")) > 0
    assert not [n for n in os.listdir(sparse_runs[0]) if n.startswith(".")]  # no temp files left


def test_sparse_plot_is_a_png(sparse_runs, tmp_path):
    variants, _ = aggregate_sparse(sparse_runs)
    out = tmp_path / "plots"
    out.mkdir()
    path = plot_sparse(variants, str(out), "lenet_300_100 on mnist")
    assert os.path.basename(path) == "sparsity.png"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000
    assert os.listdir(out) == ["sparsity.png"]


def test_sparse_other_settings_pending_and_missing_seeds(sparse_runs, tmp_path, capsys):
    sparsity, seeds = SPARSE["sparse_aaa"]
    longer = _sparse_run(tmp_path / "runs", "sparse_ccc", sparsity, {0: seeds[0]}, iterations=5000)
    fresh = tmp_path / "runs" / "sparse_ddd"
    os.makedirs(fresh / "seed_0")
    assert summarize.main([sparse_runs[0], longer, str(fresh), "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    rows = _table(stdout)
    assert rows[0].endswith("| Other settings |") and len(rows) == 3
    assert rows[1].startswith("| l0 (neuron gates) | 0.1 | 3 (0-2) |") and rows[1].endswith("| --iterations=1000 |")
    assert rows[2].startswith("| l0 (neuron gates) | 0.1 | 1 (0) |") and rows[2].endswith("| --iterations=5000 |")
    assert f"- `{fresh}`" in stdout.splitlines()  # no finished seed yet: listed, not a row
    assert "- l0 (neuron gates), strength 0.1, iterations=5000 (sparse_ccc): no seeds 1-2 (other variants " \
           "have them)" in stdout.splitlines()


def test_sparse_helpers():
    assert seed_list([7, 0, 1, 2, 3, 4, 9, 10]) == "0-4, 7, 9-10"
    assert _spread_ticks([100.0, 12.0, 5.0, 3.2, 100.0, 11.0]) == [100.0, 12.0, 5.0, 3.2]
    assert _architecture_cell(["1-2", "1-2", "3-4"]) == "1-2, 3-4"
    assert _architecture_cell(["1-2", "3-4", "5-6", "7-8"]) == "1-2, … (4 distinct)"
    assert _architecture_cell([None], "784-300-100") == "—"


@pytest.mark.parametrize("case", ["mixed", "several_lottery", "corrupt", "wrong_type", "not_a_run", "no_seed_done"])
def test_cli_bad_sparse_input_exits_2_and_writes_nothing(run, sparse_runs, tmp_path, case):
    bad = os.path.join(sparse_runs[1], "seed_1", "metrics.json")
    args, expect = list(sparse_runs), None
    if case == "mixed":
        args, expect = [sparse_runs[0], run], "cannot mix lottery and sparse-training run folders"
    if case == "several_lottery":
        args, expect = [run, run + "_copy"], "several lottery run folders"
        import shutil
        shutil.copytree(run, run + "_copy")
    if case == "corrupt":
        _write(bad, '{"seed": 1, "weights_rem')
    if case == "wrong_type":
        _write(bad, json.dumps({**json.load(open(bad)), "pruned": {"test_acc": "high"}}))
    if case in ("corrupt", "wrong_type"):
        expect = bad
    if case == "not_a_run":
        os.makedirs(tmp_path / "elsewhere")
        args, expect = [sparse_runs[0], str(tmp_path / "elsewhere")], "elsewhere: not a run folder"
    if case == "no_seed_done":
        os.makedirs(tmp_path / "sparse_new" / "seed_0")
        args, expect = [str(tmp_path / "sparse_new")], "no seed_<s>/metrics.json yet"
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    result = _cli(*args)  # --out defaults to the first folder: nothing may appear there either
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert expect in result.stderr
    assert result.stdout == ""
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_cli_usage_line():
    result = _cli("--help")
    assert result.returncode == 0
    assert "RUN [RUN ...] [--out DIR] [--format md|json]" in result.stdout


# ---------------------------------------------------------------------------------------------
# Bayesian networks and pruning while training (--prior, --estimator, --prune_score): the new
# metrics.json keys prior, estimator, prune_score, calibration; against the lottery runner.

_BAYES = {"penalty": "none", "strength": 1.0, "gates": "neuron", "keep_percent": 0.0, "estimator": "flipout",
          "prior_args": "", "scale_init": 0.0067, "kl_warmup": 0, "kl_warmup_start": 0, "mc_samples": 30,
          "prune_score": "", "prune_to": 0.0, "prune_threshold": "", "prune_every": 1000, "prune_start": 0,
          "prune_end": 0, "prune_scope": "global"}


def _calibration(error, nll, ece, mc=None):
    out = {"mean": {"error": error, "nll": nll, "ece": ece}}
    if mc:
        out["mc"] = {"samples": 30, "error": mc[0], "nll": mc[1], "ece": mc[2]}
    return out


def _bayes_run(root, name, sparsity, seeds, **training):
    """A sparse run folder of the runner today: every hparams field, the new metrics.json keys.
    seeds: {seed: (weights_remaining, final_test_acc, es_test_acc, neurons, calibration)}."""
    sparsity = {**_BAYES, **sparsity}
    run = _sparse_run(root, name, sparsity, {s: v[:4] + (None,) for s, v in seeds.items()}, **training)
    for seed, values in seeds.items():
        path = os.path.join(run, f"seed_{seed}", "metrics.json")
        bayesian = sparsity.get("prior", "none") != "none"
        _write(path, {**json.load(open(path)), "prior": sparsity.get("prior", "none"),
                      "estimator": sparsity["estimator"] if bayesian else None,
                      "prune_score": sparsity["prune_score"] or None, "calibration": values[4]})
    return run


@pytest.fixture
def bayes_runs(tmp_path):
    svd = _bayes_run(tmp_path / "runs", "sparse_svd", {
        "prior": "log_uniform", "estimator": "local_reparam", "prune_score": "log_alpha", "prune_threshold": "-3",
        "kl_warmup": 8250}, {0: (1.4, 0.98, 0.981, "500-60-40", _calibration(0.02, 0.07, 0.010, (0.019, 0.06, 0.004))),
                             1: (1.6, 0.98, 0.979, "520-62-41", _calibration(0.02, 0.09, 0.014, (0.021, 0.08, 0.006)))},
        iterations=110000)
    snr = _bayes_run(tmp_path / "runs", "sparse_snr", {"prior": "normal", "prune_score": "snr", "prune_to": 7.0},
                     {0: (7.2, 0.975, 0.976, "784-300-100", _calibration(0.025, 0.1, 0.02))}, iterations=50000)
    return svd, snr


def test_sparse_bayesian_rows_and_calibration(sparse_runs, bayes_runs, tmp_path, capsys):
    svd, snr = bayes_runs
    assert summarize.main([svd, sparse_runs[0], snr, "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    rows = _table(stdout)
    assert rows[0] == ("| Method | Strength | Seeds | Weights kept % | Architecture (of 784-300-100) "
                       "| Hidden units kept % | Test error % "
                       "| ES test error % | NLL | ECE % | MC NLL | MC ECE % | Other settings |")
    # the old metrics.json (no prior, calibration...): its row as before, — for calibration and other settings
    assert rows[1] == ("| l0 (neuron gates) | 0.1 | 3 (0-2) | 12.00 ± 2.00 | 266-88-33, 270-90-30 | 30.2 ± 0.1 | 2.00 ± 1.00 "
                       "[-0.48, 4.48] | 1.97 ± 0.50 [0.72, 3.22] | — | — | — | — | --iterations=1000 |")
    # Bayesian rows after the penalties, by prior; strength —; settings with a column not repeated
    assert rows[2] == ("| log_uniform prior (local_reparam), pruned by log_alpha (threshold -3) | — | 2 (0-1) "
                       "| 1.50 ± 0.14 | 500-60-40, 520-62-41 | 25.4 ± 0.5 | 2.00 ± 0.00 [2.00, 2.00] "
                       "| 2.00 ± 0.14 [0.73, 3.27] | 0.080 ± 0.014 "
                       "| 1.20 ± 0.28 | 0.070 ± 0.014 | 0.50 ± 0.14 | --iterations=110000, --kl_warmup=8250 |")
    assert rows[3] == ("| normal prior (flipout), pruned by snr to 7% | — | 1 (0) | 7.20 | 784-300-100 | 100.0 | 2.50 "
                       "| 2.40 | 0.100 | 2.00 | — | — | --iterations=50000, --kl_warmup=0 |")
    assert "average over 30 weight samples (--mc_samples)" in stdout
    assert "and the masks of pruning while training" in stdout
    assert ("- log_uniform prior (local_reparam), pruned by log_alpha (threshold -3), iterations=110000, "
            "kl_warmup=8250 (sparse_svd): no seed 2 (other variants have them)") in stdout.splitlines()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    l0, v_svd, v_snr = summary["variants"]
    assert (l0["prior"], l0["estimator"], l0["prune_score"], l0["calibration"]) == ("none", None, None, None)
    assert (v_svd["prior"], v_svd["estimator"], v_svd["prune_score"], v_svd["prune_threshold"]) == (
        "log_uniform", "local_reparam", "log_alpha", "-3")
    assert v_svd["iterations"] == 110000 and v_snr["prune_to"] == 7.0
    cal = v_svd["calibration"]
    assert cal["mean"]["nll"]["mean"] == pytest.approx(0.08)
    assert cal["mean"]["ece"]["mean"] == pytest.approx(1.2)  # percent
    assert cal["mc"]["samples"] == [30] and cal["mc"]["error"]["mean"] == pytest.approx(2.0)
    assert v_snr["calibration"]["mc"] is None
    assert "lottery" not in summary


def test_sparse_old_metrics_header_stays_penalty(sparse_runs, tmp_path, capsys):
    """Without Bayesian or pruned-while-training variants, the table is the one of old: 'Penalty', no calibration."""
    for path in glob.glob(os.path.join(sparse_runs[0], "seed_*", "metrics.json")):
        assert "prior" not in json.load(open(path)) and "calibration" not in json.load(open(path))
    assert summarize.main([sparse_runs[0], "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    assert _table(stdout)[0].startswith("| Penalty | Strength |") and "NLL" not in stdout
    assert "IMP" not in stdout and "after the gates. Mean" in stdout


def test_sparse_calibration_without_mc_has_no_mc_columns(bayes_runs, tmp_path, capsys):
    assert summarize.main([bayes_runs[1], "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    assert _table(stdout)[0].endswith("| ES test error % | NLL | ECE % |")
    assert "MC" not in stdout and "weight samples" not in stdout


def test_sparse_method_names_and_markers():
    assert _method("l0", "neuron") == "l0 (neuron gates)"
    assert _method("l1", None, prune_score="magnitude", prune_to=5.0) == "l1, pruned by magnitude to 5%"
    assert _method("none", None, "horseshoe", "reparam") == "horseshoe prior (reparam)"
    assert _method("none", None, "log_uniform", "local_reparam", "log_alpha", None, "-3") == \
        "log_uniform prior (local_reparam), pruned by log_alpha (threshold -3)"
    markers = [_marker({"penalty": "log_uniform", "prior": "none"}),
               _marker({"penalty": "none", "prior": "none"}),
               *(_marker({"penalty": "none", "prior": p}) for p in PRIOR_MARKERS)]
    assert len(set(markers)) == len(markers)  # a prior's marker is not its namesake penalty's


def test_sparse_other_settings_only_where_they_apply():
    flat = {"l0": {"penalty": "l0", "prior": "none", "droprate_init": 0.2, "kl_warmup": 0, "prune_score": "",
                   "prune_every": 1000},
            "svd": {"penalty": "none", "prior": "log_uniform", "droprate_init": 0.5, "kl_warmup": 8250,
                    "prune_score": "log_alpha", "prune_every": 500, "estimator": "local_reparam"},
            "old": {"penalty": "l1"}}  # an older hparams.json: none of the new fields
    assert _differing(flat) == {"l0": {"droprate_init": 0.2}, "svd": {"kl_warmup": 8250, "prune_every": 500},
                                          "old": {}}


def test_sparse_corrupt_calibration_exits_2(bayes_runs, tmp_path):
    bad = os.path.join(bayes_runs[1], "seed_0", "metrics.json")
    _write(bad, json.dumps({**json.load(open(bad)), "calibration": {"mean": {"nll": "low"}}}))
    result = _cli(bayes_runs[1], "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and bad in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# A lottery summary.json as this tool writes it (docs/mnist_lth/summary.json): per level, the
# winning ticket's ("main") final test accuracy in percent.
LOTTERY_LEVELS = [(0, 100.0, 98.0), (1, 21.0, 98.2), (2, 7.0, 98.1), (3, 3.6, 97.9)]


@pytest.fixture
def lottery_summary(tmp_path):
    levels = [{"level": level, "weights_remaining": wr, "seeds": [0, 1], "branches": {"main": {
        "seeds": [0, 1], "final_test_acc": {"mean": acc, "std": 0.1, "min": acc - 0.05, "max": acc + 0.05, "n": 2}}},
        "ticket_vs_dense": None} for level, wr, acc in LOTTERY_LEVELS]
    path = tmp_path / "lth" / "summary.json"
    _write(str(path), {"run_dir": "/elsewhere/lottery_x", "title": "lenet_300_100 on mnist",
                       "accuracy_unit": "percent", "levels": levels, "missing": []})
    return str(path)


def test_lottery_comparison_from_summary_json(sparse_runs, bayes_runs, lottery_summary, tmp_path, capsys):
    out = tmp_path / "out"
    args = [sparse_runs[0], *bayes_runs, "--lottery", lottery_summary, "--out", str(out)]
    assert summarize.main([*args, "--lottery_iterations", "1000"]) == 0
    stdout = capsys.readouterr().out
    section = stdout[stdout.index("## Against iterative magnitude pruning"):]
    assert stdout.index("## Against") < stdout.index("Run folders:")
    assert _table(section)[:4] == [
        "| Method | Weights kept % | Test error % | Iterations | IMP level | IMP weights % | IMP test error % "
        "| IMP iterations | Match |",
        # 12% kept: nearest level 2 (7%, by ratio closer than 21%), 42% fewer weights: flagged
        "| l0 (neuron gates), strength 0.1, iterations=1000 | 12.00 ± 2.00 | 2.00 ± 1.00 | 1,000 | 2 | 7.00 "
        "| 1.90 ± 0.10 | 3,000 | -42% ⚠ |",
        # 1.5% kept: sparser than the lottery's sparsest level (3.6%) by more than 15%
        "| log_uniform prior (local_reparam), pruned by log_alpha (threshold -3), iterations=110000, "
        "kl_warmup=8250 | 1.50 ± 0.14 | 2.00 ± 0.00 | 110,000 | — | — | — | — | not reached |",
        "| normal prior (flipout), pruned by snr to 7%, iterations=50000, kl_warmup=0 | 7.20 | 2.50 | 50,000 | 2 "
        "| 7.00 | 1.90 ± 0.10 | 3,000 | -3% |"]
    assert "1,000 iterations (--lottery_iterations, default 50,000: the lottery run's hparams.json was not found)" \
        in section
    assert "sparsest level (3.60%, level 3)" in section
    summary = json.loads((out / "summary.json").read_text())
    lottery = summary["lottery"]
    assert (lottery["iterations_per_level"], lottery["iterations_from"]) == (1000, "--lottery_iterations")
    assert [lv["iterations"] for lv in lottery["levels"]] == [1000, 2000, 3000, 4000]
    assert lottery["levels"][1]["final_test_error"]["mean"] == pytest.approx(1.8)  # 100 - 98.2
    assert [c["match"] for c in lottery["comparison"]] == ["far", "not reached", "matched"]
    assert lottery["comparison"][2]["level"]["level"] == 2
    assert lottery["comparison"][2]["gap"] == pytest.approx(7.0 / 7.2 - 1)
    assert os.path.getsize(out / "sparsity.png") > 5000
    assert summarize.main(args) == 0  # default: 50,000 iterations per level
    assert "| 2 | 7.00 | 1.90 ± 0.10 | 150,000 |" in capsys.readouterr().out


def test_lottery_comparison_from_run_folder(run, sparse_runs, tmp_path, capsys):
    # the fake lottery run: levels 0-2 at 100, 51.3, 21.1% weights; its iterations per level in hparams.json
    _write(os.path.join(run, "hparams.json"), {"dataset": {"dataset": "mnist"}, "model": {"model": "lenet_300_100"},
                                               "training": {"iterations": 20000}, "pruning": {}})
    assert summarize.main([*sparse_runs, "--lottery", run, "--lottery_iterations", "7", "--format", "json",
                           "--out", str(tmp_path / "out")]) == 0
    lottery = json.loads(capsys.readouterr().out)["lottery"]
    assert (lottery["iterations_per_level"], lottery["iterations_from"]) == (20000, "hparams.json")
    assert [(lv["level"], lv["weights_remaining"], lv["iterations"]) for lv in lottery["levels"]] == [
        (0, 100.0, 20000), (1, 51.3, 40000), (2, 21.1, 60000)]
    markdown = (tmp_path / "out" / "summary.md").read_text()
    rows = _table(markdown[markdown.index("## Against"):])
    assert rows[1].endswith("| 12.00 ± 2.00 | 2.00 ± 1.00 | 1,000 | — | — | — | — | not reached |")
    # level 0's final test accuracy: 97.5% and 96.9% over two seeds
    assert rows[2] == ("| l1, strength 1 | 100.00 ± 0.00 | 2.00 ± 0.71 | 1,000 | 0 | 100.00 | 2.80 ± 0.42 | 20,000 "
                       "| +0% |")
    assert "20,000 iterations (its hparams.json)" in markdown
    # the lottery run's own summary.json (written into the run folder) has its hparams.json beside it
    assert summarize.main([run, "--format", "json"]) == 0
    capsys.readouterr()
    from_json = read_lottery(os.path.join(run, "summary.json"), 7)
    assert (from_json["iterations_from"], from_json["levels"]) == (lottery["iterations_from"], lottery["levels"])


def test_sparse_plot_with_lottery_is_a_png(sparse_runs, bayes_runs, lottery_summary, tmp_path):
    variants, _ = aggregate_sparse([*sparse_runs, *bayes_runs])
    lottery = read_lottery(lottery_summary)
    assert lottery["iterations_per_level"] == 50000
    out = tmp_path / "plots"
    out.mkdir()
    path = plot_sparse(variants, str(out), None, lottery)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(out) == ["sparsity.png"]


@pytest.mark.parametrize("case", ["absent", "sparse_folder", "not_a_lottery_json", "corrupt_json", "bad_level",
                                  "lottery_as_run", "iterations_without_lottery", "zero_iterations"])
def test_cli_bad_lottery_exits_2_and_writes_nothing(run, sparse_runs, lottery_summary, tmp_path, case):
    path, extra = lottery_summary, []
    if case == "absent":
        path, expect = str(tmp_path / "no_such"), "no such file or folder"
    if case == "sparse_folder":
        path, expect = sparse_runs[1], "not a lottery run folder"
    if case == "not_a_lottery_json":
        path, expect = str(tmp_path / "sparse.json"), "no 'levels'"
        _write(path, {"kind": "sparse", "variants": []})
    if case == "corrupt_json":
        path, expect = str(tmp_path / "half.json"), "half.json"
        _write(path, '{"levels": [')
    if case == "bad_level":
        path, expect = str(tmp_path / "bad.json"), "corrupt level"
        _write(path, {"levels": [{"level": 0, "branches": {}}]})
    if case == "lottery_as_run":
        expect = "compares sparse-training run folders"
    if case == "iterations_without_lottery":
        expect, extra = "needs --lottery", ["--lottery_iterations", "100"]
    if case == "zero_iterations":
        expect, extra = "must be >= 1", ["--lottery_iterations", "0"]
    args = [run] if case == "lottery_as_run" else list(sparse_runs)
    args += extra if case == "iterations_without_lottery" else ["--lottery", path, *extra]
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("summarize: ")
    assert expect in result.stderr
    assert result.stdout == ""
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_cli_usage_mentions_lottery():
    result = _cli("--help")
    assert "--lottery PATH [--lottery_iterations N]" in result.stdout


# ---------------------------------------------------------------------------------------------
# Issue 24: 95% intervals over seeds, paired tests on per-example test results ("test_correct",
# tflth.io.pack_bits), training cost (cpu_seconds, flops_sparse, flops_dense).

def _pack(correct):
    """tflth.io.pack_bits, without importing tflth (TensorFlow)."""
    correct = np.asarray(correct, dtype=bool)
    return {"n": int(correct.size), "bits": base64.b64encode(np.packbits(correct).tobytes()).decode("ascii")}


def _results(seed, worse=0, examples=200):
    """A seed's per-example correctness (about 95% right), and the same with `worse` more errors."""
    correct = np.random.default_rng(seed).random(examples) < 0.95
    worse_copy = correct.copy()
    worse_copy[np.flatnonzero(correct)[:worse]] = False
    return worse_copy


def _add_results(path, correct, cpu_seconds=None, flops=None):
    """Rewrites a metrics.json as the runners write it today: test_correct (final_test_acc its mean), the cost."""
    data = json.load(open(path))
    data.update(final_test_acc=float(np.mean(correct)), test_correct=_pack(correct), cpu_seconds=cpu_seconds,
                flops_sparse=None if flops is None else flops[0], flops_dense=None if flops is None else flops[1])
    _write(path, data)


@pytest.fixture
def lottery_with_results(tmp_path):
    """3 seeds; level 1: reinit errs on 10 more of 200 test examples than the ticket on every seed,
    random_prune is right exactly where the ticket is, continue has an older metrics.json (no test_correct)."""
    run = tmp_path / "lottery"
    for seed in range(3):
        for level, branch, worse in ((0, "main", 0), (1, "main", 0), (1, "reinit", 10), (1, "random_prune", 0),
                                     (1, "continue", None)):
            path = str(run / f"replicate_{seed}" / f"level_{level}" / branch / "metrics.json")
            _write(path, _metrics(seed, level, branch, 100.0 if level == 0 else 51.3, 9000 + 500 * seed,
                                  0.97 + 0.005 * seed, 0.95))
            if worse is not None:
                _add_results(path, _results(seed, worse), cpu_seconds=60.0 * (seed + 1), flops=(1e12, 4e12))
    return str(run)


def test_lottery_intervals_match_describe(lottery_with_results, tmp_path, capsys):
    assert summarize.main([lottery_with_results, "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    acc = stats.describe([97.0, 97.5, 98.0])  # early-stop test accuracy of the 3 seeds, %
    step = stats.describe([9000, 9500, 10000])
    cells = [f"{step['mean']:.0f} ± {step['std']:.0f} [{step['ci'][0]:.0f}, {step['ci'][1]:.0f}]",
             f"{acc['mean']:.2f} ± {acc['std']:.2f} [{acc['ci'][0]:.2f}, {acc['ci'][1]:.2f}]"]
    assert f"| 0 | 100.0 | {cells[0]} | {cells[1]} |" in stdout
    assert cells == ["9500 ± 500 [8258, 10742]", "97.50 ± 0.50 [96.26, 98.74]"]
    level = json.loads((tmp_path / "out" / "summary.json").read_text())["levels"][1]
    assert level["branches"]["reinit"]["early_stop_test_acc"]["ci"] == pytest.approx(acc["ci"])
    assert level["branches"]["main"]["early_stop_step"]["ci"] == pytest.approx(step["ci"])


def test_lottery_controls_paired_with_the_ticket(lottery_with_results, tmp_path, capsys):
    assert summarize.main([lottery_with_results, "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    section = stdout[stdout.index("## Controls against the winning ticket"):]
    rows = _table(section)
    assert rows[0] == ("| Level | Weights % | Random reinit: Δ test error (points) "
                       "| Random prune: Δ test error (points) | Continue training: Δ test error (points) |")
    reinit, random_prune, continued = rows[1].split(" | ")[2:5]
    assert reinit.startswith("+5.00 [+") and reinit.endswith("], wins 0/3")  # worse on all seeds: significant
    assert random_prune == "+0.00 [+0.00, +0.00], wins 0/3 (3 tied), n.s."  # identical results: not distinguishable
    assert continued == "— |"  # an older metrics.json: no per-example results
    assert len(rows) == 2 and "n.s.: the interval holds 0" in section
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "crossed random factors" in summary["paired_test"]
    level0, level1 = summary["levels"]
    assert level0["paired_vs_ticket"] == {}
    paired = level1["paired_vs_ticket"]
    assert paired["reinit"]["diff"] == pytest.approx(5.0) and paired["reinit"]["significant"]
    assert paired["reinit"]["ci"][0] > 0 and (paired["reinit"]["wins"], paired["reinit"]["n"]) == (0, 3)
    assert paired["reinit"]["seeds"] == [0, 1, 2]
    assert paired["random_prune"]["diff"] == 0.0 and not paired["random_prune"]["significant"]
    assert paired["continue"] is None
    cost = level1["branches"]["main"]["cost"]  # CPU seconds 60, 120, 180 over the seeds
    assert cost == {"cpu_minutes": pytest.approx(2.0), "flops_sparse": 1e12, "flops_dense": 4e12, "n": 3}
    assert level1["branches"]["continue"]["cost"] is None


def test_lottery_without_test_correct_says_dash(run, tmp_path, capsys):
    assert summarize.main([run, "--out", str(tmp_path / "out")]) == 0
    section = capsys.readouterr().out.split("## Controls against the winning ticket")[1]
    assert _table(section)[1:] == ["| 1 | 51.3 | — | — |", "| 2 | 21.1 | — | — |"]
    levels = json.loads((tmp_path / "out" / "summary.json").read_text())["levels"]
    assert levels[1]["paired_vs_ticket"] == {"reinit": None, "random_prune": None}
    assert levels[1]["branches"]["main"]["cost"] is None


@pytest.fixture
def sparse_with_results(tmp_path):
    """Three sparse folders on seeds 0-2: the baseline (strength 0.1); 'worse' (0.2) errs on 10 more
    of 200 test examples on every seed; 'same' (0.3) is right exactly where the baseline is."""
    sparsity, seeds = SPARSE["sparse_aaa"]
    runs = {}
    for name, strength, worse in (("sparse_base", 0.1, 0), ("sparse_worse", 0.2, 10), ("sparse_same", 0.3, 0)):
        runs[name] = _sparse_run(tmp_path / "runs", name, {**sparsity, "strength": strength}, seeds)
        for seed in seeds:
            _add_results(os.path.join(runs[name], f"seed_{seed}", "metrics.json"), _results(seed, worse),
                         cpu_seconds=30.0 * (seed + 1), flops=(4.79e12, 9.6e12))
    return runs


def test_sparse_paired_against_baseline(sparse_with_results, tmp_path, capsys):
    runs = sparse_with_results
    out = tmp_path / "out"
    assert summarize.main([runs["sparse_same"], runs["sparse_worse"], runs["sparse_base"], "--baseline",
                           runs["sparse_base"], "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    rows = _table(stdout)
    assert rows[0].endswith("| ES test error % | Δ test error vs baseline (points) "
                            "| CPU min · training FLOPs (sparse / dense) |")
    cells = [row.split(" | ")[-2:] for row in rows[1:]]  # sorted by strength: base, worse, same
    assert [c[0] for c in cells][0::2] == ["baseline", "+0.00 [+0.00, +0.00], wins 0/3 (3 tied), n.s."]
    assert cells[1][0].startswith("+5.00 [+") and cells[1][0].endswith("], wins 0/3")
    assert [c[1] for c in cells] == ["1.0 · 4.8e12 / 9.6e12 |"] * 3  # 30, 60, 90 CPU seconds
    assert f"minus the baseline's (l0 (neuron gates), strength 0.1, `{runs['sparse_base']}`)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] == runs["sparse_base"]
    base, worse, same = summary["variants"]
    assert base["paired"] is None and base["cost"]["cpu_minutes"] == pytest.approx(1.0)
    assert worse["paired"]["diff"] == pytest.approx(5.0) and worse["paired"]["significant"]
    assert worse["paired"]["ci"][0] > 0 and worse["paired"]["wins"] == 0 and worse["paired"]["seeds"] == [0, 1, 2]
    assert same["paired"]["diff"] == 0.0 and not same["paired"]["significant"]
    error = stats.describe([100 * (1 - np.mean(_results(s, 10))) for s in range(3)])
    assert worse["final_test_error"]["ci"] == pytest.approx(error["ci"])
    assert f"{error['mean']:.2f} ± {error['std']:.2f} [{error['ci'][0]:.2f}, {error['ci'][1]:.2f}]" in rows[2]


def test_sparse_baseline_without_test_correct_says_dash(sparse_runs, sparse_with_results, tmp_path, capsys):
    """Old metrics files (no test_correct, no cost) beside new ones: — where either side lacks them."""
    args = [sparse_runs[0], sparse_runs[1], sparse_with_results["sparse_worse"]]
    assert summarize.main([*args, "--baseline", sparse_runs[0], "--out", str(tmp_path / "out")]) == 0
    rows = _table(capsys.readouterr().out)
    assert [row.split(" | ")[-2:] for row in rows[1:]] == [
        ["baseline", "— |"], ["—", "1.0 · 4.8e12 / 9.6e12 |"], ["—", "— |"]]
    variants = json.loads((tmp_path / "out" / "summary.json").read_text())["variants"]
    assert [v["paired"] for v in variants] == [None, None, None]


@pytest.mark.parametrize("case", ["unknown", "one_seed", "no_seed", "lottery"])
def test_cli_bad_baseline_exits_2_and_writes_nothing(run, sparse_runs, tmp_path, case):
    args, baseline = list(sparse_runs), sparse_runs[0]
    if case == "unknown":
        baseline = _sparse_run(tmp_path / "runs", "sparse_other", *SPARSE["sparse_aaa"])  # a run, but not given
    if case == "one_seed":
        sparsity, seeds = SPARSE["sparse_aaa"]
        baseline = _sparse_run(tmp_path / "runs", "sparse_one", sparsity, {0: seeds[0]})
        args.append(baseline)
    if case == "no_seed":
        baseline = str(tmp_path / "runs" / "sparse_new")
        os.makedirs(os.path.join(baseline, "seed_0"))
        args.append(baseline)
    if case == "lottery":
        args, baseline = [run], run
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    result = _cli(*args, "--baseline", baseline)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("summarize: --baseline=")
    assert {"unknown": "not one of the run folders given", "one_seed": "1 finished seed (0)",
            "no_seed": "0 finished seeds", "lottery": "sparse-training"}[case] in result.stderr
    assert result.stdout == ""
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_cli_corrupt_test_correct_exits_2(sparse_with_results, tmp_path):
    bad = os.path.join(sparse_with_results["sparse_base"], "seed_1", "metrics.json")
    _write(bad, json.dumps({**json.load(open(bad)), "test_correct": {"n": 200, "bits": "AAAA"}}))  # 3 bytes
    result = _cli(sparse_with_results["sparse_base"], "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and bad in result.stderr and "test_correct" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
