"""Summarise run folders: lottery tickets (a table per level, paper-style plots) or sparse
training (one table and one plot comparing the penalties or priors of several run folders).

    python tools/summarize.py RUN [RUN ...] [--out DIR] [--format md|json]
    python tools/summarize.py SPARSE_RUN [...] [--baseline RUN] [--lottery PATH [--lottery_iterations N]] [--out DIR]

One lottery-ticket run folder (<run>/replicate_<seed>/level_<L>/<branch>/metrics.json):
summary.md, summary.json, accuracy.png, early_stop.png, curves.png (Frankle & Carbin 2019,
Figures 3-4). One or more sparse-training run folders (tflth.trainer.runner:
<root>/sparse_<hash>/seed_<s>/metrics.json): summary.md (one row per folder = variant),
summary.json and sparsity.png (test error against % of weights kept, log x); Bayesian
networks (--prior) are named by prior and estimator, with calibration columns (NLL, ECE).
With --lottery (a lottery run folder or its summary.json), the sparse summary also compares
each variant with the lottery level nearest in weights kept (test error, training iterations
spent) and draws the lottery's levels in sparsity.png. Folders of the two kinds cannot be
mixed, and lottery folders are summarised one at a time.

Reads the metrics.json that exist (partial runs are fine; gaps are listed) and writes
atomically to --out (default: the first run folder given). Spread = sample std over seeds
(ddof=1), with a 95% t interval of the mean (tflth/stats.py). Bad input: one line on stderr,
exit 2, nothing written. Needs only numpy and matplotlib (no TensorFlow).

Paired tests, where metrics.json holds per-example test correctness ("test_correct"; older
files do not, their cells say —): each lottery control branch against the winning ticket of
its level, each sparse variant against the folder named by --baseline. The test is
tflth.stats.paired_difference: its interval carries both the training's seed-to-seed variation
and the test set's sampling error (seeds x examples as crossed random factors); McNemar's test
on the pooled bits would treat the seeds x examples as independent and ignore how results move
from seed to seed, and a two-level bootstrap over 5 seeds covers too rarely (tflth/stats.py). Training cost (CPU minutes,
FLOPs) where the metrics record it.
"""
import argparse
import base64
import glob
import importlib.util
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
_COST = ("cpu_seconds", "flops_sparse", "flops_dense")  # absent from metrics files older than issue 24
_OPTIONAL = ("early_stop_step", "early_stop_test_acc", "final_test_acc", *_COST)


def _load_stats():
    """tflth/stats.py, loaded as a file: `import tflth` runs the package's __init__, which imports
    TensorFlow, and this tool must not. find_spec locates the package without executing it; a
    checkout that is not installed has its tflth/ beside tools/."""
    try:
        spec = importlib.util.find_spec("tflth")
    except (ImportError, ValueError):
        spec = None
    folders = [*((spec.submodule_search_locations or []) if spec else []),
               os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tflth")]
    path = next((p for p in (os.path.join(f, "stats.py") for f in folders) if os.path.isfile(p)), None)
    if path is None:
        raise ImportError(f"summarize: tflth/stats.py not found (looked in {', '.join(folders)})")
    spec = importlib.util.spec_from_file_location("_tflth_stats", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tflth_stats = _load_stats()


class SummaryError(ValueError):
    """Bad input: the message is the one line printed before exiting with status 2."""


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_metrics(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SummaryError(f"{path}: corrupt metrics.json ({type(e).__name__}: {e})") from None


def _read_metrics(path, seed, level, branch):
    data = _load_metrics(path)
    rows = (data.get("rows") or []) if isinstance(data, dict) else None
    if (rows is None or not _number(data.get("weights_remaining"))
            or any(data.get(k) is not None and not _number(data[k]) for k in _OPTIONAL)
            or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows)):
        raise SummaryError(f"{path}: corrupt metrics.json (expected an object with a number "
                           f"'weights_remaining', numbers or null for {', '.join(_OPTIONAL)}, 'rows' a list)")
    return {"seed": seed, "level": level, "branch": branch, "path": path, "rows": rows,
            "weights_remaining": float(data["weights_remaining"]), **{k: data.get(k) for k in _OPTIONAL},
            "correct": _correct(data.get("test_correct"), path)}


def _correct(packed, path):
    """The per-example test correctness `tflth.io.pack_bits` stored ({"n", "bits"}), as booleans;
    None for metrics files older than it."""
    if packed is None:
        return None
    try:
        n, raw = packed["n"], base64.b64decode(packed["bits"], validate=True)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1 or len(raw) != (n + 7) // 8:
            raise ValueError(f"{len(raw)} bytes for n={n!r}")
    except (KeyError, TypeError, ValueError) as e:  # binascii.Error is a ValueError
        raise SummaryError(f"{path}: corrupt metrics.json ('test_correct' is not the {{\"n\", \"bits\"}} of "
                           f"tflth.io.pack_bits: {type(e).__name__}: {e})") from None
    return np.unpackbits(np.frombuffer(raw, np.uint8), count=n).astype(bool)


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
    """`tflth.stats.describe` (mean, sample std, 95% t interval "ci", n) with min and max; None for no values."""
    a = np.asarray([v * scale for v in values if v is not None], dtype=np.float64)
    return None if not a.size else {**tflth_stats.describe(a), "min": float(a.min()), "max": float(a.max())}


def _cost(records):
    """Means over seeds of a training's cost, None where no seed recorded it (older metrics
    files): CPU minutes, FLOPs (sparse count: the weights the masks keep; dense: as executed)."""
    def mean(key, scale=1.0):
        values = [r[key] * scale for r in records if r.get(key) is not None]
        return float(np.mean(values)) if values else None
    cost = {"cpu_minutes": mean("cpu_seconds", 1 / 60), "flops_sparse": mean("flops_sparse"),
            "flops_dense": mean("flops_dense"), "n": sum(r.get("cpu_seconds") is not None for r in records)}
    return cost if any(cost[k] is not None for k in ("cpu_minutes", "flops_sparse", "flops_dense")) else None


def _correct_by_seed(records):
    return {r["seed"]: r["correct"] for r in records if r.get("correct") is not None}


def _paired(mine, theirs):
    """`tflth.stats.paired_difference` of {seed: correct} against a baseline's {seed: correct} on
    the seeds both have (the same test set: as many examples in all); None where fewer than 2."""
    seeds = set(mine) & set(theirs)
    if len({mine[s].size for s in seeds} | {theirs[s].size for s in seeds}) > 1:
        return None
    return tflth_stats.paired_by_seed(mine, theirs)


def _num(x, digits, sign=""):
    return f"{round(x, digits) + 0.0:{sign}.{digits}f}"  # + 0.0: no "-0.00"


def _paired_cell(p):
    """'+1.20 [+0.80, +1.60], wins 0/5', with ' (k tied)' where seeds tie and ', n.s.' where the
    interval holds 0; '—' for none."""
    if p is None:
        return "—"
    text = (f"{_num(p['diff'], 2, '+')} [{_num(p['ci'][0], 2, '+')}, {_num(p['ci'][1], 2, '+')}], "
            f"wins {p['wins']}/{p['n']}" + (f" ({p['ties']} tied)" if p.get("ties") else ""))
    return text if p["significant"] else text + ", n.s."


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
                "final_test_acc": _stats([r["final_test_acc"] for r in rs], 100.0), "cost": _cost(rs)}
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


def pair_controls(records):
    """{level: {control branch: `_paired` against the winning ticket ("main") of that level, or None}}."""
    out = {}
    for level in sorted({r["level"] for r in records}):
        at_level = [r for r in records if r["level"] == level]
        ticket = _correct_by_seed(r for r in at_level if r["branch"] == "main")
        controls = sorted({r["branch"] for r in at_level} - {"main"}, key=_branch_key)
        out[level] = {b: _paired(_correct_by_seed(r for r in at_level if r["branch"] == b), ticket)
                      for b in controls}
    return out


def _fmt(stats, digits, n_level, ci=False):
    """'mean ± std', with ' [low, high]' (the 95% interval) if `ci` and known, ' (n=k)' for fewer seeds."""
    if not stats:
        return "—"
    std = "" if stats["std"] is None else f" ± {stats['std']:.{digits}f}"
    interval = stats.get("ci") if ci else None  # a summary.json older than the intervals has none
    std += f" [{_num(interval[0], digits)}, {_num(interval[1], digits)}]" if interval else ""
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
                 _fmt(row["branches"].get("main", {}).get("early_stop_step"), 0, n, ci=True),
                 *(_fmt(row["branches"].get(b, {}).get("early_stop_test_acc"), 2, n, ci=True) for b in branches),
                 "—" if delta is None else f"{round(delta, 2) + 0.0:+.2f}", str(n)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "ES = early stop (minimum validation loss); test accuracy at that iteration. "
              "Mean ± sample std [95% t interval of the mean] over seeds; (n=k) when fewer seeds than the level has."]
    dense = _acc(rows[0]) if rows[0]["level"] == 0 else None
    if dense is not None:
        ok = [r for r in rows[1:] if _acc(r) is not None and _acc(r) >= dense]
        best = min(ok, key=lambda r: r["weights_remaining"]) if ok else None
        lines.append(f"Dense baseline (level 0): {dense:.2f}% test accuracy at early stop; " + (
            f"the ticket matches or beats it down to {best['weights_remaining']:.1f}% weights "
            f"remaining (level {best['level']})." if best else "no pruned ticket reaches it."))
    lines += paired_markdown(rows)
    if missing_lines:
        lines += ["", "Missing (partial run):"] + [f"- {m}" for m in missing_lines]
    return "\n".join(lines) + "\n"


_PAIRED_NOTE = ("with a 95% interval that carries the seed-to-seed spread and the test set's sampling error "
                "(tflth/stats.py); wins: the seeds on which {who} errs less (tied: "
                "as many errors). n.s.: the interval holds 0, the two are not distinguishable. —: fewer than 2 seeds "
                "with per-example test results in both (metrics files older than them have none).")


def paired_markdown(rows):
    """Lines of the section 'Controls against the winning ticket' (rows with 'paired_vs_ticket',
    `pair_controls`); none when no level has a control branch."""
    controls = sorted({b for row in rows for b in row.get("paired_vs_ticket") or {}}, key=_branch_key)
    if not controls:
        return []
    head = [("Level", "---:"), ("Weights %", "---:"),
            *((f"{_style(b)[0].capitalize()}: Δ test error (points)", "---:") for b in controls)]
    lines = ["", "## Controls against the winning ticket", ""] + _table_head(head)
    for row in (r for r in rows if r.get("paired_vs_ticket")):
        cells = [str(row["level"]), f"{row['weights_remaining']:.1f}",
                 *(_paired_cell(row["paired_vs_ticket"].get(b)) for b in controls)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "Test error at the end of training of the control minus the winning ticket's at the same "
                    "level, on the same seeds and test examples (positive: the ticket errs less), "
                    + _PAIRED_NOTE.format(who="the control")]


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
    hp = read_hparams(run_dir) or {}
    try:
        names = [(hp.get(k) or {}).get(k) or (hp.get(k) or {}).get("name") for k in ("model", "dataset")]
    except AttributeError:
        return None
    return " on ".join(str(x) for x in names if x) or None


# ---------------------------------------------------------------------------------------------
# Sparse training (tflth.trainer.runner): <root>/sparse_<hash>/hparams.json, seed_<s>/metrics.json

_SEED = re.compile(r"seed_(\d+)$")
_SPARSE_OPTIONAL = ("early_stop_step", "early_stop_test_acc", "final_test_acc", *_COST)
# hparams with a column of their own (the method's name or Strength): never in "Other settings"
_SHOWN = ("penalty", "strength", "gates", "keep_percent", "prior", "estimator", "prune_score", "prune_to",
          "prune_threshold")
# hparams that mean something only for some rows: not listed in the other rows' "Other settings"
_ONLY_FOR = {"l0": ("gates", "gate_l2", "droprate_init"),
             "bayes": ("prior_args", "scale_init", "kl_warmup", "kl_warmup_start", "mc_samples"),
             "prune": ("prune_every", "prune_start", "prune_end", "prune_scope")}
MARKERS = {"l0": "o", "none": "*", "l1": "s", "lp": "D", "student_t": "^", "log_t": "v", "log_uniform": "P",
           "horseshoe": "X", "horseshoe_plus": "h", "igg": "<", "log_scale_t": ">"}  # by penalty
PRIOR_MARKERS = {"normal": "p", "log_uniform": "d", "horseshoe": "8", "spike_and_slab": "H"}  # Bayesian, by prior
_MATCH = 0.15  # the lottery level nearest in weights kept is a match within 15% (relative)


def run_kind(run_dir):
    """'lottery', 'sparse' or None (not recognisable: absent, empty, something else)."""
    name = os.path.basename(os.path.normpath(run_dir))
    here = glob.escape(run_dir)
    if glob.glob(os.path.join(here, "replicate_*", "level_*")) or name.startswith("lottery_"):
        return "lottery"
    if glob.glob(os.path.join(here, "seed_*", "metrics.json")) or name.startswith("sparse_"):
        return "sparse"
    hp = read_hparams(run_dir) or {}
    return "sparse" if "sparsity" in hp else "lottery" if "pruning" in hp else None


def read_hparams(run_dir):
    """hparams.json as a dict (informational; None when absent or unreadable)."""
    try:
        with open(os.path.join(run_dir, "hparams.json")) as f:
            hp = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return hp if isinstance(hp, dict) else None


def _number_or_null(value):
    return value is None or _number(value)


def _read_sparse_metrics(path, seed):
    data = _load_metrics(path)
    ok = isinstance(data, dict) and _number(data.get("weights_remaining")) and all(
        _number_or_null(data.get(k)) for k in _SPARSE_OPTIONAL) and isinstance(data.get("rows", []), list)
    arch, pruned = (data.get("architecture"), data.get("pruned")) if ok else (None, None)
    ok = ok and (arch is None or isinstance(arch, dict) and all(
        isinstance(arch.get(k), (str, type(None))) for k in ("neurons", "original")))
    ok = ok and (pruned is None or isinstance(pruned, dict) and _number(pruned.get("weights_remaining"))
                 and _number_or_null(pruned.get("test_acc")) and _number_or_null(pruned.get("keep_percent")))
    ok = ok and isinstance(data.get("penalty"), (str, type(None))) and _number_or_null(data.get("strength"))
    ok = ok and all(isinstance(data.get(k), (str, type(None))) for k in ("prior", "estimator", "prune_score"))
    calibration = data.get("calibration") if ok else None
    ok = ok and _calibration_ok(calibration)
    if not ok:
        raise SummaryError(f"{path}: corrupt metrics.json (expected an object with a number 'weights_remaining', "
                           f"numbers or null for {', '.join(_SPARSE_OPTIONAL)}, 'architecture' an object or null, "
                           "'pruned' null or an object with a number 'weights_remaining', 'calibration' null or "
                           "an object whose 'mean' and 'mc' hold numbers)")
    arch = arch or {}
    if pruned is not None:
        pruned = {"keep_percent": pruned.get("keep_percent"), "weights_remaining": float(pruned["weights_remaining"]),
                  "test_acc": pruned.get("test_acc"),
                  "neurons": (pruned.get("architecture") or {}).get("neurons")
                  if isinstance(pruned.get("architecture"), dict) else None}
    return {"seed": seed, "path": path, "penalty": data.get("penalty"), "strength": data.get("strength"),
            "prior": data.get("prior"), "estimator": data.get("estimator"), "prune_score": data.get("prune_score"),
            "calibration": calibration, "weights_remaining": float(data["weights_remaining"]),
            "neurons": arch.get("neurons"), "original": arch.get("original"), "pruned": pruned,
            **{k: data.get(k) for k in _SPARSE_OPTIONAL}, "correct": _correct(data.get("test_correct"), path)}


def _calibration_ok(calibration):
    """Null, or the runner's {"mean": {"error", "nll", "ece"}, "mc": {"samples", ...} (may be absent)} of numbers."""
    if calibration is None:
        return True
    modes = [calibration.get("mean"), calibration.get("mc") or {}] if isinstance(calibration, dict) else [None]
    return all(isinstance(m, dict) and all(_number_or_null(m.get(k)) for k in ("error", "nll", "ece", "samples"))
               for m in modes)


def collect_sparse(run_dir):
    """(records sorted by seed, unfinished seeds): one record per seed_<s>/metrics.json; a
    seed_<s> folder without one is a seed still running (or killed). Raises SummaryError for
    a corrupt file."""
    if not os.path.isdir(run_dir):
        raise SummaryError(f"{run_dir}: not a directory (expected a run folder with seed_<s>/metrics.json)")
    records, unfinished = [], []
    for folder in glob.glob(os.path.join(glob.escape(run_dir), "seed_*")):
        match = _SEED.search(os.path.basename(folder))
        if not match or not os.path.isdir(folder):
            continue
        path = os.path.join(folder, "metrics.json")
        if os.path.isfile(path):
            records.append(_read_sparse_metrics(path, int(match[1])))
        else:
            unfinished.append(int(match[1]))
    return sorted(records, key=lambda r: r["seed"]), sorted(unfinished)


def _flatten(hp):
    """{flag: value} of hparams.json (every field is a flag of the same name), without 'format'."""
    out = {}
    for key, value in (hp or {}).items():
        if isinstance(value, dict):
            out.update(value)
        elif key != "format":
            out[key] = value
    return out


def _flag(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if value == "" else str(value)


def _differing(flat_by_dir):
    """{run_dir: {flag: value}} of the hparams (other than those with a column) that differ
    between the folders, so that two rows never look alike without saying why."""
    known = [flat for flat in flat_by_dir.values() if flat]
    keys = sorted({k for flat in known for k in flat} - set(_SHOWN))
    # A field missing from an older folder's hparams.json was added later with its default: compare
    # only the folders that have it.
    differ = [k for k in keys if len({json.dumps(flat[k], sort_keys=True) for flat in known if k in flat}) > 1]
    out = {}
    for run_dir, flat in flat_by_dir.items():
        applies = {"l0": flat.get("penalty") == "l0", "bayes": flat.get("prior", "none") != "none",
                   "prune": bool(flat.get("prune_score"))}
        hidden = {k for kind, keys in _ONLY_FOR.items() if not applies[kind] for k in keys}
        out[run_dir] = {k: flat[k] for k in differ if k in flat and k not in hidden}
    return out


def _error(acc):
    return None if acc is None else 100.0 * (1.0 - acc)


def _section(hp, name):
    section = (hp or {}).get(name)
    return section if isinstance(section, dict) else {}


def _variant(run_dir, records, unfinished, hp, settings):
    sparsity = _section(hp, "sparsity")
    first = records[0] if records else {}
    penalty = sparsity.get("penalty", first.get("penalty"))
    strength = sparsity.get("strength", first.get("strength"))
    gates = sparsity.get("gates") if penalty == "l0" else None
    prior = sparsity.get("prior", first.get("prior")) or "none"  # older runs: no Bayesian layers
    estimator = sparsity.get("estimator", first.get("estimator")) if prior != "none" else None
    prune_score = sparsity.get("prune_score", first.get("prune_score")) or None
    prune_to, prune_threshold = (sparsity.get("prune_to") or None, sparsity.get("prune_threshold") or None) \
        if prune_score else (None, None)
    method = _method(penalty, gates, prior, estimator, prune_score, prune_to, prune_threshold)
    with_pruned = [r for r in records if r["pruned"]]
    pruned = None if not with_pruned else {
        "seeds": [r["seed"] for r in with_pruned],
        "keep_percent": sparsity.get("keep_percent", with_pruned[0]["pruned"]["keep_percent"]),
        "weights_kept": _stats([r["pruned"]["weights_remaining"] for r in with_pruned]),
        "test_error": _stats([_error(r["pruned"]["test_acc"]) for r in with_pruned]),
        "neurons": [r["pruned"]["neurons"] for r in with_pruned]}
    originals = sorted({r["original"] for r in records if r["original"]})
    return {"run_dir": os.path.normpath(run_dir), "label": _variant_label(method, penalty, strength, settings),
            "method": method, "penalty": penalty, "gates": gates, "strength": strength,
            "keep_percent": sparsity.get("keep_percent"), "prior": prior, "estimator": estimator,
            "prune_score": prune_score, "prune_to": prune_to, "prune_threshold": prune_threshold,
            "iterations": _section(hp, "training").get("iterations"), "settings": settings,
            "seeds": [r["seed"] for r in records], "unfinished_seeds": unfinished,
            "weights_kept": _stats([r["weights_remaining"] for r in records]),
            "architecture": {"original": originals[0] if len(originals) == 1 else None,
                             "neurons": [r["neurons"] for r in records]},
            "hidden_kept": _stats([hidden_kept(r["neurons"], r["original"]) for r in records]),
            "final_test_error": _stats([_error(r["final_test_acc"]) for r in records]),
            "early_stop_test_error": _stats([_error(r["early_stop_test_acc"]) for r in records]),
            "early_stop_step": _stats([r["early_stop_step"] for r in records]),
            "calibration": _calibration([r["calibration"] for r in records if r["calibration"]]),
            "pruned": pruned, "cost": _cost(records), "paired": None}


def _calibration(found):
    """Statistics over seeds of the Bayesian calibration (error and ECE in percent), None if no seed has it."""
    def stats(modes):
        return {"error": _stats([m.get("error") for m in modes], 100.0), "nll": _stats([m.get("nll") for m in modes]),
                "ece": _stats([m.get("ece") for m in modes], 100.0)}
    mc = [c["mc"] for c in found if c.get("mc")]
    return None if not found else {
        "mean": stats([c["mean"] for c in found]),
        "mc": {"samples": sorted({m.get("samples") for m in mc}, key=str), **stats(mc)} if mc else None}


def _penalty_name(penalty, gates):
    return f"{penalty or '?'}" + (f" ({gates} gates)" if gates else "")


def _method(penalty, gates, prior="none", estimator=None, prune_score=None, prune_to=None, prune_threshold=None):
    """'l0 (neuron gates)', 'log_uniform prior (local_reparam)', '..., pruned by snr to 5%'."""
    name = _penalty_name(penalty, gates) if prior == "none" else f"{prior} prior" + (
        f" ({estimator})" if estimator else "")
    if prune_score:
        name += f", pruned by {prune_score}" + (f" to {_flag(float(prune_to))}%" if prune_to else "") + (
            f" (threshold {prune_threshold})" if prune_threshold else "")
    return name


def _variant_label(method, penalty, strength, settings):
    label = method
    if penalty != "none" and strength is not None:
        label += f", strength {_flag(float(strength))}"
    return label + "".join(f", {k}={_flag(v)}" for k, v in settings.items())


def _variant_key(v):
    return (v["prior"] != "none", v["penalty"] != "none", str(v["penalty"]), str(v["gates"]), v["strength"] or 0.0,
            v["prior"], str(v["estimator"]), str(v["prune_score"]), -(v["prune_to"] or 100.0),
            json.dumps(v["settings"], sort_keys=True), v["run_dir"])


def aggregate_sparse(run_dirs, baseline=None):
    """(variants, pending): one variant per run folder with at least one finished seed, sorted
    by penalty, gates, strength (percentages: weights kept, test error = 100 * (1 - accuracy)),
    each with 'paired' against the folder `baseline` (--baseline) if given; pending = the folders
    with no finished seed yet. Raises SummaryError for corrupt files, a bad `baseline` or when no
    folder has a finished seed."""
    collected = {d: collect_sparse(d) for d in run_dirs}
    baseline = _baseline(baseline, run_dirs, collected)
    hps = {d: read_hparams(d) for d in run_dirs}
    pending = [os.path.normpath(d) for d in run_dirs if not collected[d][0]]
    done = [d for d in run_dirs if collected[d][0]]
    if not done:
        raise SummaryError(f"{', '.join(run_dirs)}: no seed_<s>/metrics.json yet (no seed has finished)")
    settings = _differing({d: _flatten(hps[d]) for d in done})
    variants = [_variant(d, *collected[d], hps[d], settings[d]) for d in done]
    if baseline:
        correct = {os.path.normpath(d): _correct_by_seed(collected[d][0]) for d in done}
        for v in variants:
            v["paired"] = None if v["run_dir"] == baseline else _paired(correct[v["run_dir"]], correct[baseline])
    return sorted(variants, key=_variant_key), pending


def _baseline(baseline, run_dirs, collected):
    """The folder (normalised) of `run_dirs` that --baseline names, None without one. Raises
    SummaryError when it names none of them or one with fewer than 2 finished seeds."""
    if baseline is None:
        return None
    found = [d for d in run_dirs if os.path.realpath(d) == os.path.realpath(baseline)]
    if not found:
        raise SummaryError(f"--baseline={baseline}: not one of the run folders given ({', '.join(run_dirs)})")
    seeds = [r["seed"] for r in collected[found[0]][0]]
    if len(seeds) < 2:
        raise SummaryError(f"--baseline={baseline}: {len(seeds)} finished seed{'' if len(seeds) == 1 else 's'} "
                           f"({_seed_list(seeds) or 'none'}); paired tests need at least 2")
    return os.path.normpath(found[0])


def missing_sparse(variants):
    """Lines naming, per variant, the seeds other variants have and it lacks, and its unfinished seeds."""
    every = sorted({s for v in variants for s in v["seeds"]})
    lines = []
    for v in variants:
        gone = [s for s in every if s not in v["seeds"] and s not in v["unfinished_seeds"]]
        parts = ([f"unfinished {_seeds(v['unfinished_seeds'])}"] if v["unfinished_seeds"] else []) + (
            [f"no {_seeds(gone)} (other variants have them)"] if gone else [])
        if parts:
            lines.append(f"{v['label']} ({os.path.basename(v['run_dir'])}): {'; '.join(parts)}")
    return lines


def _seeds(seeds):
    return ("seed " if len(seeds) == 1 else "seeds ") + _seed_list(seeds)


def _seed_list(seeds):
    """'0-4, 7' for [0, 1, 2, 3, 4, 7]."""
    runs, seeds = [], sorted(seeds)
    for s in seeds:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def hidden_kept(neurons, original):
    """% of hidden units kept: an architecture lists the inputs of each weighted layer, so after
    the first entry (the input features) come the hidden units: "208-135-51" of "784-300-100" is
    46.5. None when either is missing or there is no hidden layer."""
    try:
        kept, total = ([int(n) for n in a.split("-")][1:] for a in (neurons, original))
    except (AttributeError, ValueError):
        return None
    return 100.0 * sum(kept) / sum(total) if total and len(kept) == len(total) else None


def _architecture_cell(neurons, original=None, limit=3):
    distinct = list(dict.fromkeys(n for n in neurons if n))
    if not distinct:
        return "—"
    cell = ", ".join(distinct) if len(distinct) <= limit else f"{distinct[0]}, … ({len(distinct)} distinct)"
    return cell + (f" of {original}" if original else "")


def sparse_markdown(variants, title=None, run_dirs=(), pending=(), missing_lines=(), lottery=None, baseline=None):
    """The summary as markdown: one table row per variant (run folder); the first column is
    'Method' when some variant is Bayesian or pruned while training ('Penalty' otherwise, as
    before); calibration columns only when some variant has them, pruned columns only when some
    seed was pruned to a matched %, the paired difference only given `baseline` (the folder of
    --baseline), the training cost only when some variant has it, an 'Other settings' column only
    when folders differ in more than the settings with a column; then, given `lottery`
    (`read_lottery`), the comparison with iterative magnitude pruning."""
    pruned, others = any(v["pruned"] for v in variants), any(v["settings"] for v in variants)
    calibrated = [v["calibration"] for v in variants if v["calibration"]]
    mc = [c["mc"] for c in calibrated if c["mc"]]
    new_methods = any(v["prior"] != "none" or v["prune_score"] for v in variants)
    originals = {v["architecture"]["original"] for v in variants}
    common = next(iter(originals)) if len(originals) == 1 else None
    head = [("Method" if new_methods else "Penalty", "---"), ("Strength", "---:"), ("Seeds", "---"),
            ("Weights kept %", "---:"), (f"Architecture (of {common})" if common else "Architecture", "---"),
            ("Test error %", "---:"), ("ES test error %", "---:")]
    hidden = any(v.get("hidden_kept") for v in variants)
    if hidden:
        head.insert(5, ("Hidden units kept %", "---:"))
    if calibrated:
        head += [("NLL", "---:"), ("ECE %", "---:")] + ([("MC NLL", "---:"), ("MC ECE %", "---:")] if mc else [])
    if pruned:
        head += [("Pruned: weights kept %", "---:"), ("Pruned: test error %", "---:")]
    extra = _extra_columns(variants, baseline)
    head += [h for h, _ in extra]
    if others:
        head += [("Other settings", "---")]
    lines = ([f"# {title}", ""] if title else []) + _table_head(head)
    for v in variants:
        n, p, c = len(v["seeds"]), v["pruned"], v["calibration"] or {}
        bayesian_or_none = v["prior"] != "none" or v["penalty"] == "none"
        cells = [v["method"], "—" if bayesian_or_none or v["strength"] is None else _flag(float(v["strength"])),
                 f"{n} ({_seed_list(v['seeds'])})", _fmt(v["weights_kept"], 2, n),
                 _architecture_cell(v["architecture"]["neurons"], None if common else v["architecture"]["original"]),
                 _fmt(v["final_test_error"], 2, n, ci=True), _fmt(v["early_stop_test_error"], 2, n, ci=True)]
        if hidden:
            cells.insert(5, _fmt(v.get("hidden_kept"), 1, n))
        for mode in ("mean", "mc") if mc else ("mean",) if calibrated else ():
            stats = c.get(mode) or {}
            cells += [_fmt(stats.get("nll"), 3, n), _fmt(stats.get("ece"), 2, n)]
        if pruned:
            cells += [_fmt(p["weights_kept"], 2, n), _fmt(p["test_error"], 2, n, ci=True)] if p else ["—", "—"]
        cells += [cell(v) for _, cell in extra]
        if others:
            cells.append(", ".join(f"--{k}={_flag(val)}" for k, val in v["settings"].items()) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    masks = " and the masks of pruning while training" if any(v["prune_score"] for v in variants) else ""
    lines += ["", "Test error = 100 × (1 − test accuracy) at the end of training; ES = early stop (minimum "
              f"validation loss). Weights kept: % of weights non-zero after the gates{masks}. Mean ± sample std "
              "over seeds, and for test errors [95% t interval of the mean]; (n=k) when fewer seeds than the row has."]
    if calibrated:
        samples = sorted({n for m in mc for n in m["samples"]}, key=str)
        lines.append("NLL (nats) and ECE (expected calibration error, 15 equal-width confidence bins) on the test "
                     "set, of the Bayesian network's mean mode (posterior means)" + (
                         f"; MC: of its predictive distribution, the average over {' or '.join(map(str, samples))} "
                         "weight samples (--mc_samples)" if mc else "") + ". —: not measured (a deterministic network"
                     + (", or --mc_samples=0" if mc else "") + ").")
    if pruned:
        lines.append("Pruned: the trained model pruned by weight magnitude (global) to a matched % and tested again.")
    lines += _extra_notes(variants, baseline)
    if lottery:
        lines += ["", *lottery_markdown(compare_lottery(variants, lottery), lottery)]
    lines += ["", "Run folders: " + ", ".join(f"`{d}`" for d in run_dirs)]
    if pending:
        lines += ["", "No finished seed yet (not in the table):"] + [f"- `{d}`" for d in pending]
    if missing_lines:
        lines += ["", "Missing (partial runs):"] + [f"- {m}" for m in missing_lines]
    return "\n".join(lines) + "\n"


def _extra_columns(variants, baseline):
    """[((title, alignment), cell(variant))] of the optional columns: the paired difference against
    the folder `baseline`, and the training cost where some variant recorded it."""
    columns = []
    if baseline:
        columns.append((("Δ test error vs baseline (points)", "---:"),
                        lambda v: "baseline" if v["run_dir"] == baseline else _paired_cell(v["paired"])))
    if any(v["cost"] for v in variants):
        columns.append((("CPU min · training FLOPs (sparse / dense)", "---:"), lambda v: _cost_cell(v["cost"])))
    return columns


def _extra_notes(variants, baseline):
    notes = []
    if baseline:
        label = next(v["label"] for v in variants if v["run_dir"] == baseline)
        notes.append(f"Δ test error: the variant's test error at the end of training minus the baseline's ({label}, "
                     f"`{baseline}`), on the same seeds and test examples (negative: the variant errs less), "
                     + _PAIRED_NOTE.format(who="the variant"))
    if any(v["cost"] for v in variants):
        notes.append("Training cost: mean CPU minutes per seed, and training FLOPs counting only the weights the "
                     "masks keep / as executed by dense kernels (tflth/pruning/flops.py: 3 passes per step); —: "
                     "not recorded (metrics files older than them).")
    return notes


def _cost_cell(cost):
    if not cost:
        return "—"
    cpu = "—" if cost["cpu_minutes"] is None else f"{cost['cpu_minutes']:.1f}"
    return f"{cpu} · {_sci(cost['flops_sparse'])} / {_sci(cost['flops_dense'])}"


def _sci(x):
    """4.8e12 for 4.79e12 ('—' for None)."""
    return "—" if x is None else f"{x:.1e}".replace("e+", "e").replace("e0", "e")


def _table_head(head):
    """The header and alignment lines of a markdown table of (title, alignment) columns."""
    return ["| " + " | ".join(h for h, _ in head) + " |", "|" + "|".join(a for _, a in head) + "|"]


# ---------------------------------------------------------------------------------------------
# Against the lottery-ticket runner: iterative magnitude pruning (IMP) with rewinding, level L
# trained (L + 1) times for the same number of iterations.

def read_lottery(path, iterations=None):
    """{"source", "levels": [{"level", "weights_remaining", "final_test_error" (stats, percent),
    "iterations" spent to get there}], "iterations_per_level", "iterations_from"} of a lottery
    run folder or of a lottery summary.json written by this tool. Iterations per level come from
    the hparams.json of the run folder (or next to the summary.json), else `iterations` (default
    50,000). Raises SummaryError when `path` is neither."""
    expected = "expected a lottery run folder or the summary.json this tool wrote for one"
    if os.path.isdir(path):
        if run_kind(path) != "lottery":
            raise SummaryError(f"{path}: --lottery: not a lottery run folder ({expected})")
        rows, folder = aggregate(collect(path)), path
    elif os.path.isfile(path):
        data = _load_metrics(path)
        rows, folder = data.get("levels") if isinstance(data, dict) else None, os.path.dirname(path)
        if not isinstance(rows, list) or not rows:
            raise SummaryError(f"{path}: --lottery: no 'levels' ({expected})")
    else:
        raise SummaryError(f"{path}: --lottery: no such file or folder ({expected})")
    hp = read_hparams(folder) or {}
    per_level = _section(hp, "training").get("iterations") if "pruning" in hp else None  # a lottery run's only
    source = "hparams.json" if _number(per_level) else "--lottery_iterations"
    per_level = per_level if _number(per_level) else iterations or 50000
    try:
        levels = [{"level": row["level"], "weights_remaining": float(row["weights_remaining"]),
                   "final_test_error": _complement(((row.get("branches") or {}).get("main") or {})
                                                   .get("final_test_acc")),
                   "iterations": (row["level"] + 1) * per_level} for row in rows]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise SummaryError(f"{path}: --lottery: corrupt level ({type(e).__name__}: {e}; {expected})") from None
    return {"source": os.path.normpath(path), "iterations_per_level": per_level, "iterations_from": source,
            "levels": sorted((lv for lv in levels if lv["weights_remaining"] > 0), key=lambda lv: lv["level"])}


def _complement(stats):
    """Accuracy statistics in percent as error statistics (100 - accuracy)."""
    if not stats:
        return None
    ci = stats.get("ci")  # absent from a summary.json older than the intervals
    return {"mean": 100.0 - stats["mean"], "std": stats.get("std"), "ci": ci and [100.0 - ci[1], 100.0 - ci[0]],
            "min": 100.0 - stats["max"], "max": 100.0 - stats["min"], "n": stats["n"]}


def compare_lottery(variants, lottery):
    """Per variant, the lottery level nearest in weights kept (log scale): 'gap' = its weights
    relative to the variant's, 'match' = 'matched' (within _MATCH), 'far', or 'not reached'
    (the lottery's sparsest level has over _MATCH more weights; 'level' is then None)."""
    levels, out = lottery["levels"], []
    for v in variants:
        kept = v["weights_kept"]["mean"]
        nearest = lambda lv: abs(math.log(lv["weights_remaining"] / kept))  # noqa: E731 (log scale)
        level = min(levels, key=nearest) if levels and kept > 0 else None
        gap = None if level is None else level["weights_remaining"] / kept - 1.0
        match = "not reached" if gap is None or gap > _MATCH and level["weights_remaining"] == min(
            lv["weights_remaining"] for lv in levels) else "matched" if abs(gap) <= _MATCH else "far"
        out.append({"run_dir": v["run_dir"], "label": v["label"], "weights_kept": v["weights_kept"],
                    "test_error": v["final_test_error"], "iterations": v["iterations"],
                    "level": None if match == "not reached" else level, "gap": gap, "match": match})
    return out


def _iterations(n):
    return "—" if n is None else f"{n:,}"


def lottery_markdown(comparison, lottery):
    """Lines of the section 'Against iterative magnitude pruning' (see compare_lottery)."""
    head = [("Method", "---"), ("Weights kept %", "---:"), ("Test error %", "---:"), ("Iterations", "---:"),
            ("IMP level", "---:"), ("IMP weights %", "---:"), ("IMP test error %", "---:"),
            ("IMP iterations", "---:"), ("Match", "---")]
    lines = ["## Against iterative magnitude pruning", ""] + _table_head(head)
    for c in comparison:
        n, level = (c["weights_kept"] or {}).get("n", 0), c["level"]
        imp = ["—"] * 4 if level is None else [
            str(level["level"]), f"{level['weights_remaining']:.2f}",
            _fmt(level["final_test_error"], 2, (level["final_test_error"] or {}).get("n", 0)),
            _iterations(level["iterations"])]
        match = "not reached" if c["match"] == "not reached" else f"{round(c['gap'], 2) + 0.0:+.0%}" + (
            " ⚠" if c["match"] == "far" else "")
        lines.append("| " + " | ".join([c["label"], _fmt(c["weights_kept"], 2, n), _fmt(c["test_error"], 2, n),
                                        _iterations(c["iterations"]), *imp, match]) + " |")
    sparsest = min(lottery["levels"], key=lambda lv: lv["weights_remaining"], default=None)
    per_level = lottery["iterations_per_level"]
    lines += ["", f"IMP: iterative magnitude pruning with rewinding, the lottery runner (`{lottery['source']}`); "
              f"level L trains L + 1 times for {per_level:,} iterations ("
              + ("its hparams.json" if lottery["iterations_from"] == "hparams.json" else
                 "--lottery_iterations, default 50,000: the lottery run's hparams.json was not found")
              + "), so (L + 1) × that many iterations spent; its test error: the winning ticket's at the end of "
              "training. Iterations: the variant's --iterations (one training run). Weights kept and test error "
              "of the variant: after training (before any --keep_percent)."]
    lines.append(f"Match: the IMP level nearest in weights kept, its weights relative to the variant's; ⚠ more "
                 f"than {_MATCH:.0%} apart" + ("" if sparsest is None else
                                              f"; not reached: sparser than the lottery run's sparsest level "
                                              f"({sparsest['weights_remaining']:.2f}%, level {sparsest['level']}) "
                                              f"by more than {_MATCH:.0%}") + ".")
    return lines


def _spread_ticks(values, min_gap=0.08):
    """The actual percentages, largest first, skipping any closer than `min_gap` decades to the
    last one kept (scattered variants, unlike the geometric levels `_ticks` thins)."""
    ticks = []
    for x in sorted({round(v, 2) for v in values if v > 0}, reverse=True):
        if not ticks or math.log10(ticks[-1] / x) >= min_gap:
            ticks.append(x)
    return ticks


def _marker(v):
    return PRIOR_MARKERS.get(v["prior"], "o") if v["prior"] != "none" else MARKERS.get(v["penalty"], "o")


def plot_sparse(variants, out_dir, title=None, lottery=None):
    """Write sparsity.png: test error against % of weights kept (log x), one colour per variant
    (markers by penalty, or by prior for Bayesian networks), error bars over seeds; hollow
    markers after training, filled ones after pruning to a matched %, joined by a dotted line;
    given `lottery` (`read_lottery`), its levels' final test error as a gray line. Returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    handles, xs, any_pruned = [], [], False
    for i, v in enumerate(variants):
        color, marker = plt.cm.tab10(i % 10), _marker(v)
        points = [(v["weights_kept"], v["final_test_error"], "none")]
        if v["pruned"]:
            points.append((v["pruned"]["weights_kept"], v["pruned"]["test_error"], color))
        points = [p for p in points if p[0] and p[1] and p[0]["mean"] > 0]
        for x, y, face in points:
            ax.errorbar([x["mean"]], [y["mean"]], xerr=[x["std"] or 0.0], yerr=[y["std"] or 0.0], color=color,
                        marker=marker, mfc=face, mec=color, ms=8, mew=1.5, capsize=3, elinewidth=1, ls="none")
            xs.append(x["mean"])
        if len(points) == 2:
            any_pruned = True
            ax.plot([p[0]["mean"] for p in points], [p[1]["mean"] for p in points], ls=":", color=color, lw=1)
        if points:
            handles.append(Line2D([], [], color=color, marker=marker, mfc=color, ls="none", ms=7,
                                  label=f"{v['label']} (n={len(v['seeds'])})"))
    imp = [(lv["weights_remaining"], lv["final_test_error"]) for lv in (lottery or {}).get("levels", [])
           if lv["final_test_error"]]
    if imp:
        ax.errorbar([x for x, _ in imp], [e["mean"] for _, e in imp], yerr=[e["std"] or 0.0 for _, e in imp],
                    color="gray", marker=".", ms=6, lw=1, capsize=2, elinewidth=0.8, zorder=1)
        handles.append(Line2D([], [], color="gray", marker=".", ms=6, lw=1, label="IMP + rewinding (lottery runner)"))
    if any_pruned:
        handles += [Line2D([], [], color="gray", marker="o", mfc="none", ls="none", label="after training"),
                    Line2D([], [], color="gray", marker="o", mfc="gray", ls="none", label="pruned to matched %")]
    ax.set(xlabel="Weights kept (%)", ylabel="Test error (%)")
    span = xs + [x for x, _ in imp]
    if span:
        ax.set_xscale("log")
        ax.set_xlim(min(span) / 1.4, min(100.0, max(span)) * 1.4)
        # the variants' and the ends: every lottery level would crowd the axis
        ax.xaxis.set_major_locator(FixedLocator(_spread_ticks(xs + [min(span), max(span)])))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _label(x)))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.text(0.5, 0.5, "no test accuracy recorded", ha="center", va="center", transform=ax.transAxes)
    n_seeds = max((len(v["seeds"]) for v in variants), default=0)
    spread = "error bars: ±1 std over seeds" if n_seeds > 1 else "1 seed"
    outside = len(handles) > 6 or max((len(h.get_label()) for h in handles), default=0) > 60
    legend = dict(handles=handles, fontsize=8)
    if outside:
        legend.update(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.legend(**legend)
    return _finish(plt, fig, ax, f"{title + ' — ' if title else ''}Test error vs weights kept ({spread})",
                   os.path.join(out_dir, "sparsity.png"))


def summarize_sparse(run_dirs, lottery=None, baseline=None):
    """(markdown, json text, write plots(out)) of one or more sparse-training run folders, and
    the comparison with `lottery` (`read_lottery`) and the paired differences against the folder
    `baseline` (--baseline) if given."""
    variants, pending = aggregate_sparse(run_dirs, baseline)
    baseline = baseline and next(v["run_dir"] for v in variants
                                 if os.path.realpath(v["run_dir"]) == os.path.realpath(baseline))
    titles = {read_title(d) for d in run_dirs}
    title = next(iter(titles)) if len(titles) == 1 else None
    gaps, dirs = missing_sparse(variants), [os.path.normpath(d) for d in run_dirs]
    markdown = sparse_markdown(variants, title, dirs, pending, gaps, lottery, baseline)
    summary = {"kind": "sparse", "run_dirs": dirs, "title": title, "spread": _SPREAD,
               "unit": "percent (weights kept, test error = 100 * (1 - accuracy))", "baseline": baseline,
               "paired_test": _PAIRED_TEST.format(baseline="the baseline") if baseline else None, "cost": _COST_NOTE,
               "variants": variants, "pending": pending, "missing": gaps}
    if lottery:
        summary["lottery"] = {**lottery, "comparison": compare_lottery(variants, lottery)}
    text = json.dumps(summary, indent=2) + "\n"
    return markdown, text, lambda out: [plot_sparse(variants, out, title, lottery)]


def summarize_lottery(run_dir):
    """(markdown, json text, write plots(out)) of one lottery-ticket run folder."""
    records = collect(run_dir)
    rows, gaps, title = aggregate(records), missing(records), read_title(run_dir)
    paired = pair_controls(records)
    for row in rows:
        row["paired_vs_ticket"] = paired[row["level"]]
    markdown = to_markdown(rows, gaps, title)
    text = json.dumps({"run_dir": os.path.abspath(run_dir), "title": title, "spread": _SPREAD,
                       "paired_test": _PAIRED_TEST.format(baseline="the winning ticket (main) of the same level"),
                       "accuracy_unit": "percent", "cost": _COST_NOTE, "levels": rows, "missing": gaps},
                      indent=2) + "\n"
    return markdown, text, lambda out: plot(rows, out, title, records)


_SPREAD = "sample std (ddof=1); ci: 95% t interval of the mean over seeds (tflth.stats.describe)"
_PAIRED_TEST = ("paired_difference of tflth.stats: diff = test error (points) minus that of {baseline} on the shared "
                "seeds and test examples, ci 95% (seeds x examples as crossed random factors), wins = seeds with "
                "lower error; null: fewer than 2 shared seeds with per-example test results")
_COST_NOTE = ("means over seeds of each training's own cost: cpu_minutes, flops_sparse (the weights the masks "
              "keep) and flops_dense (as executed), tflth/pruning/flops.py; null where the metrics lack them")


def summarize(run_dirs, lottery=None, lottery_iterations=None, baseline=None):
    """Dispatch on the kind of the folders; SummaryError for a mix, several lottery folders, a
    folder of neither kind among several, a bad `lottery` (the path of --lottery, for sparse
    folders only) or a bad `baseline` (--baseline: one of the sparse folders, 2 seeds or more)."""
    seen = set()  # a folder given twice counts once
    run_dirs = [d for d in run_dirs if not (os.path.realpath(d) in seen or seen.add(os.path.realpath(d)))]
    kinds = {d: run_kind(d) for d in run_dirs}
    if lottery_iterations is not None and (lottery is None or lottery_iterations < 1):
        raise SummaryError(f"--lottery_iterations={lottery_iterations}: " + (
            "needs --lottery" if lottery is None else "must be >= 1"))
    if lottery is not None and "sparse" not in kinds.values():
        raise SummaryError(f"--lottery={lottery}: compares sparse-training run folders with a lottery run; "
                           f"{', '.join(run_dirs)} holds none")
    if baseline is not None and "sparse" not in kinds.values():
        raise SummaryError(f"--baseline={baseline}: names one of several sparse-training run folders; a lottery "
                           "summary pairs each control branch with the winning ticket itself")
    if len(run_dirs) == 1 and kinds[run_dirs[0]] != "sparse":
        return summarize_lottery(run_dirs[0])  # today's behaviour, its errors included
    if {"lottery", "sparse"} <= set(kinds.values()):
        raise SummaryError("cannot mix lottery and sparse-training run folders: " + ", ".join(
            f"{d} ({k})" for d, k in kinds.items() if k))
    if "lottery" in kinds.values():
        raise SummaryError(f"{', '.join(run_dirs)}: several lottery run folders; summarise them one at a time")
    for d, kind in kinds.items():
        if kind is None:
            raise SummaryError(f"{d}: not a directory" if not os.path.isdir(d) else
                               f"{d}: not a run folder (expected seed_<s>/metrics.json or "
                               "replicate_<seed>/level_<L>/<branch>/metrics.json)")
    return summarize_sparse(run_dirs, None if lottery is None else read_lottery(lottery, lottery_iterations), baseline)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     usage="%(prog)s RUN [RUN ...] [--out DIR] [--format md|json]\n"
                                           "       %(prog)s SPARSE_RUN [SPARSE_RUN ...] [--baseline RUN] "
                                           "[--lottery PATH [--lottery_iterations N]] [--out DIR] [--format md|json]")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN",
                        help="one lottery run folder (replicate_<seed>/level_<L>/<branch>/metrics.json), or one "
                             "or more sparse-training run folders (sparse_<hash>/seed_<s>/metrics.json)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the first run folder)")
    parser.add_argument("--format", choices=("md", "json"), default="md", help="what to print on stdout")
    parser.add_argument("--lottery", metavar="PATH",
                        help="sparse-training folders only: compare them with iterative magnitude pruning, a "
                             "lottery run folder or the summary.json this tool wrote for one (a second table; "
                             "its levels in sparsity.png)")
    parser.add_argument("--lottery_iterations", metavar="N", type=int,
                        help="the lottery's training iterations per level when PATH has no hparams.json "
                             "(a summary.json elsewhere; default 50000)")
    parser.add_argument("--baseline", metavar="RUN",
                        help="sparse-training folders only: one of the RUN folders given (2 seeds or more); every "
                             "other variant gets its paired difference in test error against it, with a 95%% "
                             "interval over seeds and test examples")
    args = parser.parse_args(argv)
    try:
        markdown, text, write_plots = summarize(args.run_dirs, args.lottery, args.lottery_iterations, args.baseline)
    except SummaryError as e:
        print(f"summarize: {e}", file=sys.stderr)
        return 2
    out = args.out or args.run_dirs[0]
    try:
        os.makedirs(out, exist_ok=True)
        _atomic_write(os.path.join(out, "summary.md"), markdown)
        _atomic_write(os.path.join(out, "summary.json"), text)
        write_plots(out)
    except OSError as e:
        print(f"summarize: cannot write to {out}: {e}", file=sys.stderr)
        return 1
    print(markdown if args.format == "md" else text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
