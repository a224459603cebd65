"""Against the lottery-ticket runner: iterative magnitude pruning (IMP) with rewinding, level L
trained (L + 1) times for the same number of iterations. Each sparse-training variant is set
beside the IMP level nearest in weights kept."""
import math
import os

from tflth import schema

from .lottery import aggregate
from .read import SummaryError, collect, load_json, number, read_hparams, run_kind, section


MATCH = 0.15  # the lottery level nearest in weights kept is a match within 15% (relative)


def read_lottery(path, iterations=None):
    """{"source", "levels": [{"level", "weights_remaining", "final_test_error" (stats, percent),
    "iterations" spent to get there}], "iterations_per_level", "iterations_from"} of a lottery
    run folder or of a lottery summary.json written by this tool. Iterations per level come from
    the hparams.json of the run folder (or next to the summary.json), else `iterations` (default
    50,000). Raises SummaryError when `path` is neither."""
    expected = "expected a lottery run folder or the summary.json this tool wrote for one"
    if os.path.isdir(path):
        if run_kind(path) != schema.LOTTERY:
            raise SummaryError(f"{path}: --lottery: not a lottery run folder ({expected})")
        rows, folder = aggregate(collect(path)), path
    elif os.path.isfile(path):
        data = load_json(path)
        rows, folder = data.get("levels") if isinstance(data, dict) else None, os.path.dirname(path)
        if not isinstance(rows, list) or not rows:
            raise SummaryError(f"{path}: --lottery: no 'levels' ({expected})")
    else:
        raise SummaryError(f"{path}: --lottery: no such file or folder ({expected})")
    hp = read_hparams(folder) or {}
    lottery_hp = schema.SECTION[schema.LOTTERY] in hp  # not a sparse run's hparams.json beside the summary.json
    per_level = section(hp, "training").get("iterations") if lottery_hp else None
    source = "hparams.json" if number(per_level) else "--lottery_iterations"
    per_level = per_level if number(per_level) else iterations or 50000
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
    relative to the variant's, 'match' = 'matched' (within MATCH), 'far', or 'not reached'
    (the lottery's sparsest level has over MATCH more weights; 'level' is then None)."""
    levels, out = lottery["levels"], []
    for v in variants:
        kept = v["weights_kept"]["mean"]
        nearest = lambda lv: abs(math.log(lv["weights_remaining"] / kept))  # noqa: E731 (log scale)
        level = min(levels, key=nearest) if levels and kept > 0 else None
        gap = None if level is None else level["weights_remaining"] / kept - 1.0
        match = "not reached" if gap is None or gap > MATCH and level["weights_remaining"] == min(
            lv["weights_remaining"] for lv in levels) else "matched" if abs(gap) <= MATCH else "far"
        out.append({"run_dir": v["run_dir"], "label": v["label"], "weights_kept": v["weights_kept"],
                    "test_error": v["final_test_error"], "iterations": v["iterations"],
                    "level": None if match == "not reached" else level, "gap": gap, "match": match})
    return out
