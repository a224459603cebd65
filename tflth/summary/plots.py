"""The figures: a lottery run's accuracy, early-stop iteration and validation curves against
weights remaining (Frankle & Carbin 2019, Figures 3-4), and the sparse variants' test error
against weights kept. matplotlib is imported when a figure is drawn."""
import math
import os

import numpy as np

from tflth.io import atomic_path

from .lottery import branches_of, early_stop_acc
from .read import number


STYLE = {"main": ("winning ticket", "tab:blue", "o"), "reinit": ("random reinit", "tab:orange", "s"),
         "random_prune": ("random prune", "tab:green", "^"),
         "continue": ("continue training", "tab:red", "D")}  # by branch (tflth.schema.BRANCHES)
MARKERS = {"l0": "o", "none": "*", "l1": "s", "lp": "D", "student_t": "^", "log_t": "v", "log_uniform": "P",
           "horseshoe": "X", "horseshoe_plus": "h", "igg": "<", "log_scale_t": ">"}  # by penalty
PRIOR_MARKERS = {"normal": "p", "log_uniform": "d", "horseshoe": "8", "spike_and_slab": "H"}  # Bayesian, by prior


def style(branch):
    """(label, colour, marker) of a lottery branch, in the figures and the tables' headers."""
    return STYLE.get(branch, (branch.replace("_", " "), None, "o"))


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
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
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
        for b in branches_of(rows):
            pts = [(r["weights_remaining"], r["branches"][b][key]) for r in rows
                   if r["branches"].get(b, {}).get(key)]
            label, color, marker = style(b)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], yerr=[p[1]["std"] or 0.0 for p in pts],
                            label=label, color=color, marker=marker, ms=4, capsize=3, lw=1.3)
        if key == "early_stop_test_acc" and rows[0]["level"] == 0 and early_stop_acc(rows[0]) is not None:
            ax.axhline(early_stop_acc(rows[0]), color="gray", ls="--", lw=0.8, label="dense (level 0)")
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
                if number(r.get("step")) and number(r.get("val_acc")):
                    by_step.setdefault(r["step"], []).append(100.0 * r["val_acc"])
        if by_step:
            curves.append((row["weights_remaining"], sorted(by_step),
                           [float(np.mean(by_step[s])) for s in sorted(by_step)]))
    picks = np.linspace(0, len(curves) - 1, min(count, len(curves))).round().astype(int)
    return [curves[i] for i in sorted(set(picks))]


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
    handles, xs, any_pruned = _draw_variants(ax, variants)
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


def _draw_variants(ax, variants):
    """Each variant after training (hollow marker) and after pruning to a matched % (filled),
    joined by a dotted line. Returns (legend handles, the x values drawn, whether any was pruned)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
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
    return handles, xs, any_pruned
