"""Statistics over the seeds of one table cell (`tflth.stats`): spread and interval, training
cost, and the paired difference with a baseline on the same seeds and test examples."""
import numpy as np

from tflth import stats as tflth_stats


def describe(values, scale=1.0):
    """`tflth.stats.describe` (mean, sample std, 95% t interval "ci", n) with min and max; None for no values."""
    a = np.asarray([v * scale for v in values if v is not None], dtype=np.float64)
    return None if not a.size else {**tflth_stats.describe(a), "min": float(a.min()), "max": float(a.max())}


def mean_cost(records):
    """Means over seeds of a training's cost, None where no seed recorded it (older metrics
    files): CPU minutes, FLOPs (sparse count: the weights the masks keep; dense: as executed)."""
    def mean(key, scale=1.0):
        values = [r[key] * scale for r in records if r.get(key) is not None]
        return float(np.mean(values)) if values else None
    cost = {"cpu_minutes": mean("cpu_seconds", 1 / 60), "flops_sparse": mean("flops_sparse"),
            "flops_dense": mean("flops_dense"), "n": sum(r.get("cpu_seconds") is not None for r in records)}
    return cost if any(cost[k] is not None for k in ("cpu_minutes", "flops_sparse", "flops_dense")) else None


def correct_by_seed(records):
    return {r["seed"]: r["correct"] for r in records if r.get("correct") is not None}


def paired(mine, theirs):
    """`tflth.stats.paired_difference` of {seed: correct} against a baseline's {seed: correct} on
    the seeds both have (the same test set: as many examples in all); None where fewer than 2."""
    seeds = set(mine) & set(theirs)
    if len({mine[s].size for s in seeds} | {theirs[s].size for s in seeds}) > 1:
        return None
    return tflth_stats.paired_by_seed(mine, theirs)
