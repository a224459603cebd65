"""tools/summarize.py on a fake, partial lottery-ticket run folder with known numbers."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "summarize.py")
_spec = importlib.util.spec_from_file_location("tflth_tools_summarize", SCRIPT)
summarize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summarize)

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
    records = summarize.collect(run)
    assert [(r["seed"], r["level"], r["branch"]) for r in records] == [
        (0, 0, "main"), (1, 0, "main"), (0, 1, "main"), (1, 1, "main"), (0, 1, "reinit"),
        (1, 1, "reinit"), (0, 1, "random_prune"), (0, 2, "main"), (0, 2, "reinit")]


def test_aggregate_means_and_stds(run):
    rows = summarize.aggregate(summarize.collect(run))
    assert [r["level"] for r in rows] == [0, 1, 2]
    assert [r["weights_remaining"] for r in rows] == [100.0, 51.3, 21.1]
    assert [r["seeds"] for r in rows] == [[0, 1], [0, 1], [0]]
    l0, l1, l2 = rows
    assert list(l0["branches"]) == ["main"]
    assert list(l1["branches"]) == ["main", "reinit", "random_prune"]
    step = l0["branches"]["main"]["early_stop_step"]
    assert step == {"mean": 11000.0, "std": pytest.approx(1000 * math.sqrt(2)), "min": 10000.0,
                    "max": 12000.0, "n": 2}
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
    assert summarize.missing(summarize.collect(run)) == [
        "seed 0 level 2: random_prune", "seed 1 level 1: random_prune",
        "seed 1 level 2: main, reinit, random_prune"]


def test_markdown_formatting(run):
    records = summarize.collect(run)
    md = summarize.to_markdown(summarize.aggregate(records), summarize.missing(records), "LeNet")
    lines = md.splitlines()
    assert lines[0] == "# LeNet"
    assert ("| Level | Weights % | Ticket ES iter | Winning ticket ES acc % | Random reinit ES acc % "
            "| Random prune ES acc % | Ticket Δ vs dense (pp) | Seeds |") in lines
    assert "| 0 | 100.0 | 11000 ± 1414 | 97.50 ± 0.71 | — | — | +0.00 | 2 |" in lines
    assert "| 1 | 51.3 | 8500 ± 707 | 98.30 ± 0.28 | 95.50 ± 0.71 | 95.50 (n=1) | +0.80 | 2 |" in lines
    assert "| 2 | 21.1 | 7000 | 97.00 | 90.00 | — | -0.50 | 1 |" in lines
    assert "down to 51.3% weights remaining (level 1)" in md
    assert "- seed 1 level 2: main, reinit, random_prune" in lines


def test_plot_writes_pngs(run, tmp_path):
    records = summarize.collect(run)
    out = tmp_path / "plots"
    out.mkdir()
    written = summarize.plot(summarize.aggregate(records), str(out), "lenet_300_100 on mnist", records)
    assert sorted(os.path.basename(p) for p in written) == ["accuracy.png", "curves.png", "early_stop.png"]
    for path in written:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 5000
    assert sorted(os.listdir(out)) == ["accuracy.png", "curves.png", "early_stop.png"]  # no temp files


def test_ticks_are_actual_percentages_thinned():
    assert summarize._ticks([100.0, 51.3, 21.1]) == [100.0, 51.3, 21.1]
    assert summarize._ticks([100.0]) == [100.0]
    dense = [100 * 0.8 ** k for k in range(20)]  # 20% per level: labels would collide
    ticks = summarize._ticks(dense)
    assert ticks[0] == 100.0 and ticks[-1] == round(dense[-1], 2) and len(ticks) == 8
    assert set(ticks) <= {round(x, 2) for x in dense}
    assert [summarize._label(x) for x in (100.0, 51.3, 0.47)] == ["100", "51.3", "0.47"]


def _cli(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_main_writes_everything(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert summarize.main([run, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "| 1 | 51.3 | 8500 ± 707 |" in stdout
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
