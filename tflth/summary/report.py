"""One summary: its markdown, its JSON and a function that draws its figures, for one lottery
run folder or for sparse-training run folders."""
import json
import os

from tflth import schema

from .imp_comparison import compare_lottery
from .lottery import aggregate, missing, pair_controls
from .markdown import sparse_markdown, to_markdown
from .plots import plot, plot_sparse
from .read import collect, read_title
from .sparse import aggregate_sparse, missing_sparse

_SPREAD = "sample std (ddof=1); ci: 95% t interval of the mean over seeds (tflth.stats.describe)"
_PAIRED_TEST = ("paired_difference of tflth.stats: diff = test error (points) minus that of {baseline} on the shared "
                "seeds and test examples, ci 95% (seeds x examples as crossed random factors), wins = seeds with "
                "lower error; null: fewer than 2 shared seeds with per-example test results")
_COST_NOTE = ("means over seeds of each training's own cost: cpu_minutes, flops_sparse (the weights the masks "
              "keep) and flops_dense (as executed), tflth/pruning/flops.py; null where the metrics lack them")


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
    summary = {"kind": schema.SPARSE, "run_dirs": dirs, "title": title, "spread": _SPREAD,
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
