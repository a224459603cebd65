"""The ablation study: every method's hyperparameters, cells resumed and skipped, the table, the CLI."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys

import pytest

from tflth import ablation, io
from tflth.ablation import methods, report, runner
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.lottery import paths as lottery_paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY = runner.Study(DatasetHparams(batch_size=20, validation_size=40), "lenet_300_100",
                     TrainingHparams(iterations=40, eval_every=20))


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_is_a_valid_run_ending_at_its_target(method):
    hparams = runner.sparse_hparams(STUDY, method, 5.0)
    assert hparams.sparsity.prune_to == 5.0 and hparams.training == STUDY.training
    runner.check(STUDY, [method], [10.0, 5.0])  # the flags agree with each other and with the model


def test_imp_levels_hit_the_targets():
    assert [methods.imp_levels(k) for k in (10, 5, 2)] == [10, 13, 17]
    assert [round(methods.imp_kept(methods.imp_levels(k)), 2) for k in (10, 5, 2)] == [9.92, 4.96, 1.97]


def test_cells_run_once_then_are_skipped_and_the_table_shows_them(tmp_path, digits_dir, capsys):
    root = str(tmp_path / "runs")
    chosen, keep = ["imp", "snip", "rigl"], [50.0, 20.0]
    result = ablation.run(STUDY, chosen, keep, seeds=(0,), root=root, data_dir=digits_dir, verbose=False)
    assert not result["missing"] and len(result["cells"]) == 6
    for cell in result["cells"]:
        assert abs(cell["kept"] - cell["keep"]) < (3.0 if cell["method"] == "imp" else 0.01)
        assert cell["iterations"] == (40 * (methods.imp_levels(cell["keep"]) + 1) if cell["method"] == "imp" else 40)
    stamps = {p: os.path.getmtime(p) for p in _metrics_files(root)}
    again = ablation.run(STUDY, chosen, keep, seeds=(0,), root=root, data_dir=digits_dir, verbose=False)
    assert again == result and {p: os.path.getmtime(p) for p in _metrics_files(root)} == stamps
    text = ablation.write(result, chosen, keep, str(tmp_path / "out"), title="t")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| Method | 50% kept: test error % | 20% kept: test error % |"
    assert [r.split(" | ")[0] for r in rows[1:4]] == ["| imp", "| snip", "| rigl"]
    assert rows[4].startswith("| Method | Iterations per cell | 50% kept: training FLOPs")
    assert sorted(os.listdir(tmp_path / "out")) == ["ablation.json", "ablation.md", "ablation.png", "ablation_flops.png"]
    saved = io.read_json(str(tmp_path / "out" / "ablation.json"))
    assert saved["summary"]["snip"]["50.0"]["n"] == 1


def test_collect_only_trains_nothing_and_writes_the_finished_cells(tmp_path, digits_dir):
    root = tmp_path / "runs"
    ablation.run(STUDY, ["snip"], [50.0], seeds=(0,), root=str(root), data_dir=digits_dir, verbose=False)
    before = sorted(os.listdir(root))
    args = [f"--root={root}", "--methods=snip,rigl", "--keep=50", "--seeds=0", "--collect_only",
            f"--batch_size={STUDY.dataset.batch_size}", f"--validation_size={STUDY.dataset.validation_size}",
            f"--iterations={STUDY.training.iterations}", f"--eval_every={STUDY.training.eval_every}"]
    out = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "ablation.py")] + args,
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "1 cells finished, 1 not yet" in out.stdout and "| rigl | — |" in out.stdout
    assert sorted(os.listdir(root)) == sorted(before + ["ablation"])  # no rigl folder was made
    shutil.rmtree(root / before[0])  # the snip run is gone (another machine): ablation.json still has it
    out = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "ablation.py")] + args,
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "1 cells finished, 1 not yet" in out.stdout and "1 cells were read from the ablation.json" in out.stdout


def test_a_missing_cell_is_listed_not_invented(tmp_path):
    result = runner.collect(STUDY, ["gradual"], [10.0], (0, 1), str(tmp_path))
    assert result["cells"] == [] and [(c["method"], c["seed"]) for c in result["missing"]] == [("gradual", 0),
                                                                                              ("gradual", 1)]
    assert "| gradual | — |" in report.table(report.summary(result, ["gradual"], [10.0]), [10.0])


def test_cells_recorded_in_an_earlier_json_fill_only_the_same_missing_runs(tmp_path):
    result = runner.collect(STUDY, ["gradual", "snip"], [10.0], (0, 1), str(tmp_path))
    folder = result["missing"][0]["folder"]  # gradual's; snip's has another hash
    earlier = {"cells": [
        {"method": "gradual", "keep": 10.0, "seed": 0, "kept": 10.0, "error": 1.5, "iterations": 40, "seconds": 3.0,
         "folder": "elsewhere/" + os.path.basename(folder)},
        {"method": "gradual", "keep": 10.0, "seed": 1, "kept": 10.0, "error": 9.0, "iterations": 40, "seconds": 3.0,
         "folder": "elsewhere/sparse_0000000000"},  # same cell, other hyperparameters: not taken
    ]}
    merged = runner.add_recorded(result, earlier)
    assert [(c["method"], c["seed"], c["error"], c["recorded"]) for c in merged["cells"]] == [("gradual", 0, 1.5, True)]
    assert [(c["method"], c["seed"]) for c in merged["missing"]] == [("gradual", 1), ("snip", 0), ("snip", 1)]
    text = report.table(report.summary(merged, ["gradual"], [10.0]), [10.0], recorded=1, seeds=2)
    assert "| gradual | 1.50 (n=1) |" in text and "1 cells were read from the ablation.json" in text


@pytest.mark.parametrize("args,message", [
    (["--methods=imp,magic"], "--methods='imp,magic': unknown magic; allowed: imp, imp_late"),
    (["--keep=5,10"], "--keep='5.0,10.0': must decrease"),
    (["--keep=100"], "--keep='100.0': give % of weights kept, each in (0, 100)"),
    (["--keep=a"], "--keep='a': must be comma-separated numbers"),
    (["--model=lenet9"], "--model='lenet9': allowed:"),
])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, args, message):
    root = tmp_path / "runs"
    out = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "ablation.py"), f"--root={root}"] + args,
                         capture_output=True, text=True, cwd=REPO)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("error: ") and message in last and not root.exists()


def _metrics_files(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f == "metrics.json"]


def test_variants_change_one_thing():
    t = STUDY.training.iterations
    snr, by_magnitude = (runner.sparse_hparams(STUDY, m, 2.0) for m in ("snr", "snr:magnitude"))
    assert by_magnitude.sparsity == dataclasses.replace(snr.sparsity, prune_score="magnitude")
    imp = runner.imp_hparams(STUDY, "imp").pruning
    assert runner.imp_hparams(STUDY, "imp:reinit") == runner.imp_hparams(STUDY, "imp")
    assert runner.imp_hparams(STUDY, "imp_late").pruning == dataclasses.replace(imp, rewind_iteration=methods.late_iteration(t))
    assert runner.imp_hparams(STUDY, "imp_lr").pruning == dataclasses.replace(imp, rewind_weights=False)
    assert runner.imp_hparams(STUDY, "imp_layerwise").pruning == dataclasses.replace(imp, scope="layerwise")
    for bad in ("snr:reinit", "imp:magnitude", "imp:main", "snr:", "imp,imp"):
        with pytest.raises(ValueError, match="--methods="):
            methods.check_methods(bad.split(","))


def test_cells_carry_their_cost_and_per_example_results_and_the_report_pairs_them(tmp_path, digits_dir):
    root, out = str(tmp_path / "runs"), str(tmp_path / "out")
    chosen = ["imp_late", "imp_late:reinit", "snip:random"]
    result = ablation.run(STUDY, chosen, [50.0], seeds=(0, 1), root=root, data_dir=digits_dir, verbose=False)
    assert not result["missing"] and len(result["cells"]) == 6
    t = STUDY.training.iterations
    k = methods.late_iteration(t)
    level = methods.imp_levels(50.0)
    for cell in result["cells"]:
        correct = io.unpack_bits(cell["correct"])
        assert correct.shape == (60,) and 100 * (1 - correct.mean()) == pytest.approx(cell["error"], abs=1e-4)
        assert cell["cpu_seconds"] > 0 and cell["flops_sparse"] < cell["flops_dense"]
    imp_run = result["cells"][0]["folder"]
    replicate = lottery_paths.replicate_dir(imp_run, 0)
    parts = [lottery_paths.pretrain_dir(replicate)] + [lottery_paths.branch_dir(replicate, lv, "main")
                                                        for lv in range(level)]
    for cell in result["cells"][:4]:  # each IMP cell costs the pretraining, the levels before it and its branch
        branch = "reinit" if cell["method"].endswith("reinit") else "main"
        spent = [io.read_json(lottery_paths.metrics(p)) for p in parts + [lottery_paths.branch_dir(
            lottery_paths.replicate_dir(imp_run, cell["seed"]), level, branch)]] if cell["seed"] == 0 else None
        assert cell["iterations"] == k + (level + 1) * (t - k)
        if spent:
            assert cell["flops_dense"] == sum(m["flops_dense"] for m in spent)
    controls = [d for d in os.listdir(replicate) if os.path.isdir(os.path.join(replicate, d, "reinit"))]
    assert controls == [f"level_{level}"]  # controls only at the study's levels
    text = ablation.write(result, chosen, [50.0], out, title="t", baseline="imp_late", seeds=(0, 1))
    assert "## Paired against imp_late" in text and "| imp_late:reinit | " in text.split("## Paired")[1]
    assert "ablation_flops.png" in os.listdir(out)
    assert ablation.check(out) is None
    with open(os.path.join(out, "ablation.md"), "a") as f:
        f.write("an edited line\n")
    assert "is not what" in ablation.check(out)


@pytest.mark.parametrize("args,message", [
    (["--methods=imp,snip", "--baseline=gradual", "--seeds=0,1"], "--baseline='gradual': not one of --methods"),
    (["--methods=imp,snip", "--baseline=imp", "--seeds=0"], "--seeds='0': confidence intervals and paired tests"),
    (["--check", "--out=/nonexistent/folder"], "--out=/nonexistent/folder: /nonexistent/folder/ablation.json is missing"),
    (["--check", "--out=LEGACY"], "is not an ablation.json this tflth reads (KeyError"),
])
def test_bad_statistics_flags_are_one_line_and_write_nothing(tmp_path, args, message):
    root, legacy = tmp_path / "runs", tmp_path / "legacy"  # legacy: an ablation.json of before the statistics
    legacy.mkdir()
    (legacy / "ablation.json").write_text('{"cells": [], "missing": [], "summary": {}}')
    (legacy / "ablation.md").write_text("| Method |\n")
    args = [a.replace("LEGACY", str(legacy)) for a in args]
    out = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "ablation.py"), f"--root={root}"] + args,
                         capture_output=True, text=True, cwd=REPO)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("error: ") and message in last and not root.exists()


@pytest.mark.parametrize("study", ["ablation", "evidence"])
def test_the_tables_under_docs_are_what_their_json_gives(study):
    assert ablation.check(os.path.join(REPO, "docs", study)) is None


def test_every_command_of_the_evidence_script_has_valid_flags():
    with open(os.path.join(REPO, "tools", "evidence_runs.sh")) as f:
        commands = [line.split() for line in f if line.strip().startswith("cell ")]
    assert len(commands) > 5
    for words in commands:
        flags = dict(w.lstrip("-").split("=", 1) for w in words[2:])
        methods.check_methods(flags["methods"].split(","))
        methods.check_keep([float(k) for k in flags["keep"].split(",")])
        assert re.fullmatch(r"\$SEEDS|\$seed", flags["seeds"]), words
