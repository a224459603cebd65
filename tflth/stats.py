"""Statistics for comparing methods over seeds and test examples (NumPy only).

- `describe`: mean, sample std and a 95% confidence interval of the mean over seeds (Student's
  t, the seeds taken as independent draws of the training's randomness).
- `paired_bootstrap`: the difference in test error between two methods that share seeds and test
  examples, with a 95% interval from a two-level paired bootstrap (Bouthillier et al. 2021,
  "Accounting for variance in machine learning benchmarks"): each resample draws seeds with
  replacement, then test examples with replacement, the same draws for both methods, so the
  interval carries both the training's randomness and the test set's sampling error. McNemar's
  test on pooled correctness would treat the 5 x 10,000 (seed, example) pairs as independent
  and ignore how much results move from seed to seed; a t-test over seeds alone would ignore
  the test set's sampling error, which two methods share only in part.

With few seeds the seed level of the bootstrap sees few distinct resamples (126 for 5 seeds),
so its interval is somewhat narrower than a t interval would be; `wins` (on how many seeds the
method is better) is reported beside it.
"""
import math

import numpy as np

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
BOOTSTRAP_RESAMPLES = 10_000


def t975(df):
    """The 0.975 quantile of Student's t with `df` degrees of freedom (a table up to 30, then
    Cornish-Fisher's expansion around the normal quantile, within 1e-3)."""
    if df < 1:
        raise ValueError(f"df={df}: a t interval needs at least 2 values (1 degree of freedom)")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def describe(values):
    """{"mean", "std" (sample), "ci": [low, high] (95%, t), "n"}; std and ci are None for one value."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("describe: no values")
    out = {"mean": float(a.mean()), "std": None, "ci": None, "n": int(a.size)}
    if a.size > 1:
        out["std"] = float(a.std(ddof=1))
        half = t975(a.size - 1) * out["std"] / math.sqrt(a.size)
        out["ci"] = [out["mean"] - half, out["mean"] + half]
    return out


def paired_bootstrap(correct_a, correct_b, resamples=BOOTSTRAP_RESAMPLES, seed=0, chunk=500):
    """Method A against baseline B on the same seeds (rows) and test examples (columns).

    Args:
      correct_a, correct_b: boolean arrays (seeds, examples): is the prediction right; row s of
        both is seed s.
    Returns {"diff": mean error of A minus B in % points, "ci": [low, high] (95%, percentile),
      "p": two-sided bootstrap p-value (resolution 1 / resamples), "significant": whether the
      interval excludes 0, "wins": seeds on which A's error is lower, "ties", "n": seeds}.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired_bootstrap: both need the shape (seeds, examples); got {a.shape} and {b.shape}")
    seeds, examples = a.shape
    if seeds < 2:
        raise ValueError(f"paired_bootstrap: {seeds} shared seed; a paired interval needs at least 2")
    # Error of A minus error of B, per seed and example: -1 (A right, B wrong), 0 or 1. Only the
    # examples where some seed's two predictions differ count; drawing the other examples as one
    # lumped category gives exactly the same counts for these as a full multinomial draw.
    d = b.astype(np.float64) - a.astype(np.float64)
    d = d[:, np.any(d != 0.0, axis=0)]
    p_example = np.append(np.full(d.shape[1], 1.0 / examples), 1.0 - d.shape[1] / examples)
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        seed_counts = rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=size)          # (size, seeds)
        example_counts = rng.multinomial(examples, p_example, size=size)[:, :-1]              # (size, discordant)
        per_seed = example_counts @ d.T                                                        # (size, seeds)
        diffs.append(np.einsum("rs,rs->r", seed_counts, per_seed) / (seeds * examples))
    diffs = 100.0 * np.concatenate(diffs)
    per_seed_error = 100.0 * (1.0 - a.mean(axis=1)), 100.0 * (1.0 - b.mean(axis=1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    p = min(1.0, 2.0 * min(np.mean(diffs <= 0.0), np.mean(diffs >= 0.0)))
    return {"diff": float(100.0 * d.sum() / (seeds * examples)), "ci": [float(low), float(high)], "p": max(float(p), 1.0 / resamples),
            "significant": bool(low > 0.0 or high < 0.0),
            "wins": int(np.sum(per_seed_error[0] < per_seed_error[1])),
            "ties": int(np.sum(per_seed_error[0] == per_seed_error[1])), "n": seeds}
