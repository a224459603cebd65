"""A lottery-ticket run's records as table rows, one per level: its branches' statistics over
seeds, the gaps of a partial run, and each control paired with the winning ticket."""
import numpy as np

from .over_seeds import correct_by_seed, describe, mean_cost, paired
from .read import branch_key


def branches_of(rows):
    return sorted({b for row in rows for b in row["branches"]}, key=branch_key)


def aggregate(records):
    """Table rows, one per level: weights remaining, seeds, per-branch statistics (accuracy in
    percent) and 'ticket_vs_dense', the ticket's mean early-stop accuracy minus level 0's (pp)."""
    rows = []
    for level in sorted({r["level"] for r in records}):
        at_level = [r for r in records if r["level"] == level]
        main = [r for r in at_level if r["branch"] == "main"] or at_level
        row = {"level": level, "weights_remaining": float(np.mean([r["weights_remaining"] for r in main])),
               "seeds": sorted({r["seed"] for r in at_level}), "branches": {}}
        for branch in sorted({r["branch"] for r in at_level}, key=branch_key):
            rs = [r for r in at_level if r["branch"] == branch]
            row["branches"][branch] = {
                "seeds": [r["seed"] for r in rs],
                "weights_remaining": describe([r["weights_remaining"] for r in rs]),
                "early_stop_step": describe([r["early_stop_step"] for r in rs]),
                "early_stop_test_acc": describe([r["early_stop_test_acc"] for r in rs], 100.0),
                "final_test_acc": describe([r["final_test_acc"] for r in rs], 100.0), "cost": mean_cost(rs)}
        rows.append(row)
    dense = early_stop_acc(rows[0]) if rows[0]["level"] == 0 else None
    for row in rows:
        ticket = early_stop_acc(row)
        row["ticket_vs_dense"] = None if dense is None or ticket is None else ticket - dense
    return rows


def early_stop_acc(row, branch="main"):
    """The branch's mean test accuracy at early stop (%) in a row of `aggregate`; None if unknown."""
    stats = row["branches"].get(branch, {}).get("early_stop_test_acc")
    return stats["mean"] if stats else None


def missing(records):
    """Lines naming the (seed, level, branch) absent from a partial run."""
    later = sorted({r["branch"] for r in records if r["level"] > 0} | {"main"}, key=branch_key)
    have = {(r["seed"], r["level"], r["branch"]) for r in records}
    gaps = [(seed, level, [b for b in (later if level else ["main"]) if (seed, level, b) not in have])
            for seed in sorted({r["seed"] for r in records})
            for level in range(max(r["level"] for r in records) + 1)]
    return [f"seed {seed} level {level}: {', '.join(gone)}" for seed, level, gone in gaps if gone]


def pair_controls(records):
    """{level: {control branch: `paired` against the winning ticket ("main") of that level, or None}}."""
    out = {}
    for level in sorted({r["level"] for r in records}):
        at_level = [r for r in records if r["level"] == level]
        ticket = correct_by_seed(r for r in at_level if r["branch"] == "main")
        controls = sorted({r["branch"] for r in at_level} - {"main"}, key=branch_key)
        out[level] = {b: paired(correct_by_seed(r for r in at_level if r["branch"] == b), ticket)
                      for b in controls}
    return out
