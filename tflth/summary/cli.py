"""Summarise run folders: lottery tickets (a table per level, paper-style plots) or sparse
training (one table and one plot comparing the penalties or priors of several run folders).

    tflth summarize RUN [RUN ...] [--out DIR] [--format md|json]
    tflth summarize SPARSE_RUN [...] [--baseline RUN] [--lottery PATH [--lottery_iterations N]] [--out DIR]

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
exit 2, nothing written.

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
import os
import sys

from tflth import io, schema
from tflth.failures import RunFailure

from .imp_comparison import read_lottery
from .read import SummaryError, run_kind
from .report import summarize_lottery, summarize_sparse


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
    if lottery is not None and schema.SPARSE not in kinds.values():
        raise SummaryError(f"--lottery={lottery}: compares sparse-training run folders with a lottery run; "
                           f"{', '.join(run_dirs)} holds none")
    if baseline is not None and schema.SPARSE not in kinds.values():
        raise SummaryError(f"--baseline={baseline}: names one of several sparse-training run folders; a lottery "
                           "summary pairs each control branch with the winning ticket itself")
    if len(run_dirs) == 1 and kinds[run_dirs[0]] != schema.SPARSE:
        return summarize_lottery(run_dirs[0])  # today's behaviour, its errors included
    if {schema.LOTTERY, schema.SPARSE} <= set(kinds.values()):
        raise SummaryError("cannot mix lottery and sparse-training run folders: " + ", ".join(
            f"{d} ({k})" for d, k in kinds.items() if k))
    if schema.LOTTERY in kinds.values():
        raise SummaryError(f"{', '.join(run_dirs)}: several lottery run folders; summarise them one at a time")
    for d, kind in kinds.items():
        if kind is None:
            raise SummaryError(f"{d}: not a directory" if not os.path.isdir(d) else
                               f"{d}: not a run folder (expected seed_<s>/metrics.json or "
                               "replicate_<seed>/level_<L>/<branch>/metrics.json)")
    return summarize_sparse(run_dirs, None if lottery is None else read_lottery(lottery, lottery_iterations), baseline)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tflth summarize", description=__doc__.split("\n")[0],
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
        io.write_text(os.path.join(out, "summary.md"), markdown)
        io.write_text(os.path.join(out, "summary.json"), text)
        write_plots(out)
    except (OSError, RunFailure) as e:  # RunFailure: tflth.io's disk-full error
        print(f"summarize: cannot write to {out}: {e}", file=sys.stderr)
        return 1
    print(markdown if args.format == "md" else text, end="")
    return 0
