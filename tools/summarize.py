"""Summarise a lottery-ticket run folder: a markdown table per level and paper-style plots.

    python tools/summarize.py <run folder> [--out DIR] [--format md|json]

Reads the <run>/replicate_<seed>/level_<L>/<branch>/metrics.json that exist (partial runs
are fine; gaps are listed) and writes atomically to --out (default: the run folder)
summary.md, summary.json, accuracy.png, early_stop.png, curves.png (Frankle & Carbin 2019,
Figures 3-4). Spread = sample std over seeds (ddof=1). Bad input: one line on stderr,
exit 2, nothing written. Needs only numpy and matplotlib (no TensorFlow).
"""
import argparse
import glob
import io
import json
import math
import os
import re
import sys
import tempfile

import numpy as np

BRANCHES = ("main", "reinit", "random_prune", "continue")  # order of tflth.lottery.paths.BRANCHES
STYLE = {"main": ("winning ticket", "tab:blue", "o"), "reinit": ("random reinit", "tab:orange", "s"),
         "random_prune": ("random prune", "tab:green", "^"),
         "continue": ("continue training", "tab:red", "D")}
_PATH = re.compile(r"replicate_(\d+)/level_(\d+)/([^/]+)/metrics\.json$")
_OPTIONAL = ("early_stop_step", "early_stop_test_acc", "final_test_acc")


class SummaryError(ValueError):
    """Bad input: the message is the one line printed before exiting with status 2."""


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_metrics(path, seed, level, branch):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SummaryError(f"{path}: corrupt metrics.json ({type(e).__name__}: {e})") from None
    rows = (data.get("rows") or []) if isinstance(data, dict) else None
    if (rows is None or not _number(data.get("weights_remaining"))
            or any(data.get(k) is not None and not _number(data[k]) for k in _OPTIONAL)
            or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows)):
        raise SummaryError(f"{path}: corrupt metrics.json (expected an object with a number "
                           f"'weights_remaining', numbers or null for {', '.join(_OPTIONAL)}, 'rows' a list)")
    return {"seed": seed, "level": level, "branch": branch, "path": path, "rows": rows,
            "weights_remaining": float(data["weights_remaining"]), **{k: data.get(k) for k in _OPTIONAL}}


def collect(run_dir):
    """One record per existing metrics.json (seed, level, branch from its path), sorted by
    level, branch, seed. Raises SummaryError when there is nothing to read or a file is corrupt."""
    expected = "replicate_<seed>/level_<L>/<branch>/metrics.json"
    if not os.path.isdir(run_dir):
        raise SummaryError(f"{run_dir}: not a directory (expected a run folder with {expected})")
    records = []
    for path in glob.glob(os.path.join(glob.escape(run_dir), "replicate_*", "level_*", "*", "metrics.json")):
        match = _PATH.search("/".join(path.split(os.sep)[-4:]))
        if match and os.path.isfile(path):
            records.append(_read_metrics(path, int(match[1]), int(match[2]), match[3]))
    if not records:
        raise SummaryError(f"{run_dir}: no metrics.json found (expected {expected})")
    return sorted(records, key=lambda r: (r["level"], _branch_key(r["branch"]), r["seed"]))


def _branch_key(branch):
    return (BRANCHES.index(branch) if branch in BRANCHES else len(BRANCHES), branch)


def _branches(rows):
    return sorted({b for row in rows for b in row["branches"]}, key=_branch_key)


def _style(branch):
    return STYLE.get(branch, (branch.replace("_", " "), None, "o"))


def _stats(values, scale=1.0):
    a = np.asarray([v * scale for v in values if v is not None], dtype=np.float64)
    return None if not a.size else {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None,
                                    "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


def aggregate(records):
    """Table rows, one per level: weights remaining, seeds, per-branch statistics (accuracy in
    percent) and 'ticket_vs_dense', the ticket's mean early-stop accuracy minus level 0's (pp)."""
    rows = []
    for level in sorted({r["level"] for r in records}):
        at_level = [r for r in records if r["level"] == level]
        main = [r for r in at_level if r["branch"] == "main"] or at_level
        row = {"level": level, "weights_remaining": float(np.mean([r["weights_remaining"] for r in main])),
               "seeds": sorted({r["seed"] for r in at_level}), "branches": {}}
        for branch in sorted({r["branch"] for r in at_level}, key=_branch_key):
            rs = [r for r in at_level if r["branch"] == branch]
            row["branches"][branch] = {
                "seeds": [r["seed"] for r in rs],
                "weights_remaining": _stats([r["weights_remaining"] for r in rs]),
                "early_stop_step": _stats([r["early_stop_step"] for r in rs]),
                "early_stop_test_acc": _stats([r["early_stop_test_acc"] for r in rs], 100.0),
                "final_test_acc": _stats([r["final_test_acc"] for r in rs], 100.0)}
        rows.append(row)
    dense = _acc(rows[0]) if rows[0]["level"] == 0 else None
    for row in rows:
        ticket = _acc(row)
        row["ticket_vs_dense"] = None if dense is None or ticket is None else ticket - dense
    return rows


def _acc(row, branch="main"):
    stats = row["branches"].get(branch, {}).get("early_stop_test_acc")
    return stats["mean"] if stats else None


def missing(records):
    """Lines naming the (seed, level, branch) absent from a partial run."""
    later = sorted({r["branch"] for r in records if r["level"] > 0} | {"main"}, key=_branch_key)
    have = {(r["seed"], r["level"], r["branch"]) for r in records}
    gaps = [(seed, level, [b for b in (later if level else ["main"]) if (seed, level, b) not in have])
            for seed in sorted({r["seed"] for r in records})
            for level in range(max(r["level"] for r in records) + 1)]
    return [f"seed {seed} level {level}: {', '.join(gone)}" for seed, level, gone in gaps if gone]


def _fmt(stats, digits, n_level):
    if not stats:
        return "—"
    std = "" if stats["std"] is None else f" ± {stats['std']:.{digits}f}"
    return f"{stats['mean']:.{digits}f}{std}" + (f" (n={stats['n']})" if stats["n"] < n_level else "")


def to_markdown(rows, missing_lines=(), title=None):
    """The summary as markdown: one table row per level, then the dense comparison and gaps."""
    branches = _branches(rows)
    head = ["Level", "Weights %", "Ticket ES iter", *(f"{_style(b)[0].capitalize()} ES acc %" for b in branches),
            "Ticket Δ vs dense (pp)", "Seeds"]
    lines = ([f"# {title}", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in rows:
        n, delta = len(row["seeds"]), row["ticket_vs_dense"]
        cells = [str(row["level"]), f"{row['weights_remaining']:.1f}",
                 _fmt(row["branches"].get("main", {}).get("early_stop_step"), 0, n),
                 *(_fmt(row["branches"].get(b, {}).get("early_stop_test_acc"), 2, n) for b in branches),
                 "—" if delta is None else f"{round(delta, 2) + 0.0:+.2f}", str(n)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "ES = early stop (minimum validation loss); test accuracy at that iteration. "
              "Mean ± sample std over seeds; (n=k) when fewer seeds than the level has."]
    dense = _acc(rows[0]) if rows[0]["level"] == 0 else None
    if dense is not None:
        ok = [r for r in rows[1:] if _acc(r) is not None and _acc(r) >= dense]
        best = min(ok, key=lambda r: r["weights_remaining"]) if ok else None
        lines.append(f"Dense baseline (level 0): {dense:.2f}% test accuracy at early stop; " + (
            f"the ticket matches or beats it down to {best['weights_remaining']:.1f}% weights "
            f"remaining (level {best['level']})." if best else "no pruned ticket reaches it."))
    if missing_lines:
        lines += ["", "Missing (partial run):"] + [f"- {m}" for m in missing_lines]
    return "\n".join(lines) + "\n"


def _ticks(values, max_ticks=8, min_gap=0.08):
    """Actual percentages, evenly spread in log space (first and last kept) so labels don't collide."""
    v = np.array(sorted({round(x, 2) for x in values}, reverse=True))
    k = min(len(v), max_ticks, 1 + int(math.log10(v[0] / v[-1]) / min_gap))
    targets = np.geomspace(v[0], v[-1], k) if k > 1 else v[:1]
    return sorted({float(v[np.abs(np.log(v / t)).argmin()]) for t in targets}, reverse=True)


def _label(x):
    return "100" if x >= 99.95 else f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def _finish(plt, fig, ax, heading, path, **legend):
    ax.set_title(heading, fontsize=10)
    ax.grid(True, alpha=0.4)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **legend)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    _atomic_write(path, buf.getvalue())
    return path


def plot(rows, out_dir, title=None, records=None):
    """Write accuracy.png, early_stop.png and (given records with rows) curves.png; return paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    n_seeds = len({s for row in rows for s in row["seeds"]})
    spread = f"error bars: ±1 std over {n_seeds} seeds" if n_seeds > 1 else "1 seed"
    head, xs, written = f"{title} — " if title else "", [r["weights_remaining"] for r in rows], []
    for name, key, ylabel in (("accuracy", "early_stop_test_acc", "Test accuracy at early stop (%)"),
                              ("early_stop", "early_stop_step", "Early-stop iteration")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.set(xscale="log", xlim=(max(xs) * 1.15, min(xs) / 1.15),  # inverted: dense on the left
               xlabel="Percent of weights remaining", ylabel=ylabel)
        ax.xaxis.set_major_locator(FixedLocator(_ticks(xs)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _label(x)))
        ax.xaxis.set_minor_locator(NullLocator())
        for b in _branches(rows):
            pts = [(r["weights_remaining"], r["branches"][b][key]) for r in rows
                   if r["branches"].get(b, {}).get(key)]
            label, color, marker = _style(b)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], yerr=[p[1]["std"] or 0.0 for p in pts],
                            label=label, color=color, marker=marker, ms=4, capsize=3, lw=1.3)
        if key == "early_stop_test_acc" and rows[0]["level"] == 0 and _acc(rows[0]) is not None:
            ax.axhline(_acc(rows[0]), color="gray", ls="--", lw=0.8, label="dense (level 0)")
        written.append(_finish(plt, fig, ax, f"{head}{ylabel.split(' (')[0]} ({spread})",
                               os.path.join(out_dir, f"{name}.png")))
    curves = _curves(records or [], rows)
    if curves:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (wr, steps, accs) in enumerate(curves):
            ax.plot(steps, accs, label=f"{_label(wr)}%", color=plt.cm.viridis(i / max(1, len(curves) - 1)))
        late = [a for _, steps, accs in curves for st, a in zip(steps, accs) if st >= 0.2 * steps[-1]]
        if late:  # zoom on the end of training, as the paper does (early iterations fall off the bottom)
            ax.set_ylim(min(late) - 0.1 * (max(late) - min(late) + 1.0), max(late) + 0.25)
        ax.set(xlabel="Training iteration", ylabel="Validation accuracy (%)")
        written.append(_finish(plt, fig, ax, f"{head}Winning ticket, validation accuracy (mean over seeds)",
                               os.path.join(out_dir, "curves.png"), title="weights remaining"))
    return written


def _curves(records, rows, count=5):
    """(weights %, steps, mean validation acc %) of the ticket for up to `count` evenly spread
    levels. Validation, not test: the engine evaluates the test set only at a new best
    validation loss and at the end (unless --test_every_eval), so test points are sparse."""
    curves = []
    for row in rows:
        by_step = {}
        for rec in (r for r in records if r["level"] == row["level"] and r["branch"] == "main"):
            for r in rec["rows"]:
                if _number(r.get("step")) and _number(r.get("val_acc")):
                    by_step.setdefault(r["step"], []).append(100.0 * r["val_acc"])
        if by_step:
            curves.append((row["weights_remaining"], sorted(by_step),
                           [float(np.mean(by_step[s])) for s in sorted(by_step)]))
    picks = np.linspace(0, len(curves) - 1, min(count, len(curves))).round().astype(int)
    return [curves[i] for i in sorted(set(picks))]


def _atomic_write(path, data):
    """Write to a temporary file in the same folder, then os.replace: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_title(run_dir):
    """'<model> on <dataset>' from hparams.json (informational; None when absent or unreadable)."""
    try:
        with open(os.path.join(run_dir, "hparams.json")) as f:
            hp = json.load(f)
        names = [(hp.get(k) or {}).get(k) or (hp.get(k) or {}).get("name") for k in ("model", "dataset")]
    except (OSError, ValueError, AttributeError):
        return None
    return " on ".join(str(x) for x in names if x) or None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="run folder with replicate_<seed>/level_<L>/<branch>/metrics.json")
    parser.add_argument("--out", help="output folder (default: the run folder)")
    parser.add_argument("--format", choices=("md", "json"), default="md", help="what to print on stdout")
    args = parser.parse_args(argv)
    try:
        records = collect(args.run_dir)
    except SummaryError as e:
        print(f"summarize: {e}", file=sys.stderr)
        return 2
    rows, gaps, title = aggregate(records), missing(records), read_title(args.run_dir)
    markdown = to_markdown(rows, gaps, title)
    text = json.dumps({"run_dir": os.path.abspath(args.run_dir), "title": title, "spread": "sample std (ddof=1)",
                       "accuracy_unit": "percent", "levels": rows, "missing": gaps}, indent=2) + "\n"
    out = args.out or args.run_dir
    try:
        os.makedirs(out, exist_ok=True)
        _atomic_write(os.path.join(out, "summary.md"), markdown)
        _atomic_write(os.path.join(out, "summary.json"), text)
        plot(rows, out, title, records)
    except OSError as e:
        print(f"summarize: cannot write to {out}: {e}", file=sys.stderr)
        return 1
    print(markdown if args.format == "md" else text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
