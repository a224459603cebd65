"""README command 1's quick lottery run gives the table docs/lottery.md shows (keeps them together)."""
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRANCHES = ("main", "reinit", "random_prune")


def _quick_run_table():
    """{level: (weights remaining, [early-stop test accuracy of each branch shown])}: docs/lottery.md's
    table of the quick run (the README's until issue 29)."""
    with open(os.path.join(REPO, "docs", "lottery.md")) as f:
        text = f.read()
    head = "| level | weights remaining | ticket | random re-init | random prune |"
    lines = text[text.index(head):].splitlines()[2:]
    table = {}
    for line in lines:
        match = re.match(r"\| (\d+) \| ([\d.]+)% \|(.*)\|$", line)
        if not match:
            break
        table[int(match[1])] = (float(match[2]), [float(c) for c in match[3].split("|") if c.strip()])
    return table


def test_the_quick_run_gives_the_table_in_docs_lottery(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "mnist_lth.py"),
                          "--flagfile=" + os.path.join(REPO, "recipes", "flags", "mnist_lth_quick.cfg"),
                          f"--root={tmp_path}", "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert out.returncode == 0, out.stderr[-2000:]
    [run] = [d for d in os.listdir(tmp_path) if d.startswith("lottery_")]
    replicate = os.path.join(tmp_path, run, "replicate_0")
    table = _quick_run_table()
    assert sorted(table) == [0, 1, 2, 3]
    for level, (kept, shown) in table.items():
        branches = BRANCHES[:len(shown)]
        found = []
        for branch in branches:
            with open(os.path.join(replicate, f"level_{level}", branch, "metrics.json")) as f:
                metrics = json.load(f)
            assert round(metrics["weights_remaining"], 1) == kept, (level, branch)
            found.append(round(100 * metrics["early_stop_test_acc"], 2))
        assert found == shown, (level, found, shown)
