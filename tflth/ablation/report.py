"""The ablation's tables, statistics and plots, from the cells `runner.collect` gathers.

Per method and % of weights kept: test error as mean ± sample std with a 95% t interval over
seeds; against a named baseline, the paired difference with a 95% interval over seeds and test
examples (`tflth.stats.paired_difference`), marked "n.s." where the interval holds 0; and the
training cost: iterations, training FLOPs (sparse count and executed, as multiples of the dense
network's training, `tflth.pruning.flops`), wall and CPU minutes. ablation.json keeps the cells
and the arguments the tables were made with, so `check` can make them again and compare.
"""
import os

import numpy as np

from tflth import io, stats

_COST_KEYS = ("seconds", "cpu_seconds", "flops_sparse", "flops_dense")


def _cells(result, method, keep):
    return [c for c in result["cells"] if c["method"] == method and c["keep"] == keep]


def _mean(cells, key):
    values = [c[key] for c in cells if c.get(key) is not None]
    return float(np.mean(values)) if values else None


def _correct(cells):
    """{seed: boolean vector} of the cells that kept their per-example results."""
    return {c["seed"]: io.unpack_bits(c["correct"]) for c in cells if c.get("correct")}


def paired(cells, baseline_cells):
    """`tflth.stats.paired_difference` of two methods' cells on their shared seeds; None where
    fewer than 2 seeds kept their per-example results in both."""
    return stats.paired_by_seed(_correct(cells), _correct(baseline_cells))


def check_baseline(baseline, methods, seeds):
    """Bad input for the paired tests, before anything is read or written."""
    if not baseline:
        return
    if baseline not in methods:
        raise ValueError(f"--baseline={baseline!r}: not one of --methods; allowed: {', '.join(methods)}")
    if len(seeds) < 2:
        raise ValueError(f"--seeds={','.join(map(str, seeds))!r}: confidence intervals and paired tests against "
                         f"--baseline need at least 2 seeds")


def summary(result, methods, keep, baseline=None):
    """{method: {keep: {error, error_std, error_ci, val_error, kept, n, seeds, iterations, seconds,
    cpu_seconds, flops_sparse, flops_dense (means over seeds), paired (against `baseline`)}}}."""
    out = {}
    for method in methods:
        rows = {}
        for k in keep:
            mine = _cells(result, method, k)
            if not mine:
                continue
            error = stats.describe([c["error"] for c in mine])
            rows[k] = {"error": error["mean"], "error_std": error["std"], "error_ci": error["ci"], "n": error["n"],
                       "seeds": sorted(c["seed"] for c in mine), "val_error": _mean(mine, "val_error"),
                       "kept": _mean(mine, "kept"), "iterations": mine[0]["iterations"],
                       **{key: _mean(mine, key) for key in _COST_KEYS}, "paired": None}
            if baseline and method != baseline:
                rows[k]["paired"] = paired(mine, _cells(result, baseline, k))
        out[method] = rows
    return out


def _row(method, cells):
    return f"| {method} | " + " | ".join(cells) + " |"


def _head(*names):
    return ["| " + " | ".join(names) + " |", "|---|" + "---:|" * (len(names) - 1)]


def _error_cell(r, k, seeds):
    text = f"{r['error']:.2f}"
    if r["error_std"] is not None:
        text += f" ± {r['error_std']:.2f} [{r['error_ci'][0]:.2f}, {r['error_ci'][1]:.2f}]"
    if abs(r["kept"] - k) > 0.05 * k:
        text += f" (at {r['kept']:.2f}%)"
    return text + (f" (n={r['n']})" if r["n"] < seeds else "")


def _paired_cell(p):
    if p is None:
        return "—"
    text = f"{p['diff']:+.2f} [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}], {p['wins']}/{p['n']} seeds"
    return text if p["significant"] else text + ", n.s."


def _flops_cell(r, dense_flops):
    if r["flops_sparse"] is None or not dense_flops:
        return "—"
    return f"{r['flops_sparse'] / dense_flops:.3f} / {r['flops_dense'] / dense_flops:.2f}"


def provenance(cells, command=None):
    """A paragraph: the command that made the table and the commits that trained its cells."""
    commits = {}
    for cell in cells:
        commits[cell.get("commit") or "not recorded"] = commits.get(cell.get("commit") or "not recorded", 0) + 1
    text = f"Made by `{command}`. " if command else ""
    return text + ("Cells trained at tflth commit " + ", ".join(f"{c} ({n} cells)" for c, n in sorted(commits.items()))
                   + "; each cell's run folder (named by the hash of its hyperparameters) is in ablation.json.")


def table(summary_, keep, title=None, recorded=0, baseline=None, seeds=0, dense_flops=None, about=None):
    """Markdown: test error, the paired differences against `baseline` (if any) and the training
    cost, one row per method; `seeds`: how many seeds were asked for (cells with fewer say n=);
    `recorded`: how many cells came from an earlier ablation.json (`runner.add_recorded`);
    `about`: a closing paragraph (`provenance`)."""
    lines = [f"# {title}", ""] if title else []
    lines += _head("Method", *(f"{k:g}% kept: test error %" for k in keep))
    for method, rows in summary_.items():
        lines.append(_row(method, [_error_cell(rows[k], k, seeds) if k in rows else "—" for k in keep]))
    lines += ["", "Final test error after the method's training: mean ± sample std [95% t interval] over seeds "
              "(n=: fewer seeds than the study's). A figure in brackets is the % of weights actually kept where it "
              "is more than 5% off the target. Allocation: random, set and rigl ERK, imp_layerwise uniform, the "
              "others global (tflth/ablation/methods.py)."]
    if recorded:
        lines[-1] += (f" {recorded} cells were read from the ablation.json this table replaces: runs finished "
                      "earlier, on a machine whose run folders are gone (same folder hash, same computation).")
    if baseline:
        lines += ["", f"## Paired against {baseline}", ""]
        lines += _head("Method", *(f"{k:g}% kept: Δ error (points)" for k in keep))
        for method, rows in summary_.items():
            if method != baseline:
                lines.append(_row(method, [_paired_cell(rows[k]["paired"]) if k in rows else "—" for k in keep]))
        lines += ["", f"Test error of the method minus {baseline}'s on the same seeds and test examples (negative: "
                  "the method errs less), with a 95% interval that carries the seed-to-seed spread and the test set's "
                  "sampling error (tflth/stats.py), and the seeds on which the method errs less. n.s.: "
                  "the interval holds 0, the two are not distinguishable."]
    lines += ["", "## Training cost", ""]
    lines += _head("Method", "Iterations per cell", *(f"{k:g}% kept: training FLOPs" for k in keep),
                   "Minutes per cell", "CPU minutes per cell")
    for method, rows in summary_.items():
        spent = ", ".join(f"{s:,}" for s in sorted({r["iterations"] for r in rows.values()})) or "—"
        minutes = [f"{np.mean(v) / 60:.1f}" if v else "—" for v in
                   ([r[key] for r in rows.values() if r[key] is not None] for key in ("seconds", "cpu_seconds"))]
        lines.append(_row(method, [spent, *(_flops_cell(rows[k], dense_flops) if k in rows else "—" for k in keep),
                                   *minutes]))
    lines += ["", "Iterations: every method trains T once; IMP trains T per level up to its level (+ the rewind "
              "point's iterations, trained once). Training FLOPs as multiples of the dense network's training for T "
              "iterations: counting only the weights the masks keep / as executed by tflth's dense kernels (RigL's "
              "count, tflth/pruning/flops.py: 3 passes per step; Flipout and local reparameterisation 2 matmuls a "
              "layer). Minutes: wall and CPU time per cell on the machine that ran it."]
    if about:
        lines += ["", about]
    return "\n".join(lines) + "\n"


def plot(summary_, path, title=None):
    """Test accuracy against % of weights kept (log x axis), 95% intervals over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, rows in summary_.items():
        if not rows:
            continue
        ks = sorted(rows, reverse=True)
        ax.errorbar([rows[k]["kept"] for k in ks], [100.0 - rows[k]["error"] for k in ks],
                    yerr=[_half_ci(rows[k]) for k in ks], marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.minorticks_off()
    targets = sorted({k for rows in summary_.values() for k in rows})
    ax.set_xticks(targets, labels=[f"{k:g}" for k in targets])
    ax.invert_xaxis()
    ax.set_xlabel("% of weights kept")
    ax.set_ylabel("test accuracy %")
    _finish(plt, fig, ax, path, title)


def plot_flops(summary_, keep, path, dense_flops, title=None):
    """Test error against training FLOPs (sparse count, x dense training), one panel per % kept."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keep), figsize=(4.5 * len(keep), 4.5), squeeze=False)
    for ax, k in zip(axes[0], keep):
        for method, rows in summary_.items():
            r = rows.get(k)
            if r and r["flops_sparse"] and dense_flops:
                ax.errorbar([r["flops_sparse"] / dense_flops], [r["error"]], yerr=[_half_ci(r)], marker="o",
                            capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs (x dense training, sparse count)")
        ax.set_ylabel("test error %")
        ax.set_title(f"{k:g}% of weights kept")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(6, max(1, len(labels))))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    _save(plt, fig, path)


def _half_ci(r):
    return 0.0 if r["error_ci"] is None else (r["error_ci"][1] - r["error_ci"][0]) / 2.0


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(plt, fig, ax, path, title):
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    _save(plt, fig, path)


def _save(plt, fig, path):
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def markdown(saved, summary_=None):
    """The tables of an ablation.json's contents (`summary_`: its summary, if already made)."""
    args = saved["arguments"]
    keep = [float(k) for k in args["keep"]]
    s = summary_ or summary(saved, args["methods"], keep, args.get("baseline"))
    return table(s, keep, args.get("title"), recorded=sum(bool(c.get("recorded")) for c in saved["cells"]),
                 baseline=args.get("baseline"), seeds=len(args.get("seeds", ())), dense_flops=saved.get("dense_flops"),
                 about=provenance(saved["cells"], args.get("command")))


def write(result, methods, keep, out, title=None, baseline=None, seeds=(), command=None):
    """ablation.json, ablation.md, ablation.png and ablation_flops.png in `out` (each written
    atomically); returns the markdown. `command`: what made them, named in the table."""
    os.makedirs(out, exist_ok=True)
    saved = {**result, "arguments": {"methods": list(methods), "keep": list(keep), "title": title,
                                     "baseline": baseline or None, "seeds": list(seeds), "command": command}}
    s = summary(result, methods, keep, baseline)
    text = markdown(saved, s)
    io.write_json(os.path.join(out, "ablation.json"),
                  {"summary": {meth: {str(k): v for k, v in rows.items()} for meth, rows in s.items()}, **saved})
    io.write_text(os.path.join(out, "ablation.md"), text)
    plot(s, os.path.join(out, "ablation.png"), title)
    if any(r["flops_sparse"] for rows in s.values() for r in rows.values()):
        plot_flops(s, keep, os.path.join(out, "ablation_flops.png"), result.get("dense_flops"), title)
    return text


def check(out):
    """Makes ablation.md again from `out`/ablation.json: None if it is what is there, else a line
    naming the first line that differs. ValueError if either file is missing or unreadable."""
    paths = [os.path.join(out, name) for name in ("ablation.json", "ablation.md")]
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"--out={out}: {path} is missing; give a folder the ablation wrote")
    try:
        expected = markdown(io.read_json(paths[0]))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--out={out}: {paths[0]} is not an ablation.json this tflth reads "
                         f"({type(e).__name__}: {e})") from None
    with open(paths[1]) as f:
        found = f.read()
    for number, (a, b) in enumerate(zip(expected.splitlines() + [""], found.splitlines() + [""]), 1):
        if a != b:
            return f"{paths[1]} line {number} is not what {paths[0]} gives: found {b!r}, expected {a!r}"
    return None
