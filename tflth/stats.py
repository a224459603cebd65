"""Statistics for comparing methods over seeds and test examples (NumPy only).

- `describe`: mean, sample std and a 95% confidence interval of the mean over seeds (Student's
  t, the seeds taken as independent draws of the training's randomness).
- `paired_difference`: the difference in test error between two methods that share seeds and
  test examples, with a 95% interval that carries both sources of variation: the seed-to-seed
  spread of the per-seed differences (a paired t interval over seeds, n - 1 degrees of freedom)
  and the test set's sampling error (the spread of the seed-averaged difference over the N test
  examples), added as the variance components of a seeds x examples crossed design, with
  Welch-Satterthwaite degrees of freedom. Two alternatives were measured and
  not chosen: a two-level paired bootstrap over seeds and examples (Bouthillier et al. 2021)
  covers the true difference in only 86-91% of simulated 5-seed studies (65% with 2 seeds),
  since resampling 5 seeds underestimates their spread and ignores the t quantile; McNemar's
  test on the pooled per-example bits treats the seeds x examples pairs as independent and
  ignores the seed-to-seed spread altogether.

Each interval is 95% on its own: a table of many comparisons against one baseline will mark a
few differences significant by chance (about 1 in 20 where there is none), so a claim rests on
the comparisons named before the results were read.
"""
import math

import numpy as np

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


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


def paired_difference(correct_a, correct_b):
    """Method A against baseline B on the same seeds (rows) and test examples (columns).

    Args:
      correct_a, correct_b: boolean arrays (seeds, examples): is the prediction right; row s of
        both is seed s.
    Returns {"diff": mean error of A minus B in % points, "ci": [low, high] (95%), "se": its
      standard error, "df": the interval's degrees of freedom, "significant": whether the
      interval excludes 0, "wins": seeds on which A's error is lower, "ties", "n": seeds}.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired_difference: both need the shape (seeds, examples); got {a.shape} and {b.shape}")
    seeds, examples = a.shape
    if seeds < 2:
        raise ValueError(f"paired_difference: {seeds} shared seed; a paired interval needs at least 2")
    # Error of A minus error of B, per seed and example: -1 (A right, B wrong), 0 or 1; in points.
    d = 100.0 * (b.astype(np.float64) - a.astype(np.float64))
    per_seed, per_example = d.mean(axis=1), d.mean(axis=0)
    # Seeds and examples are crossed random factors: Var(mean) = s2_seed / n + s2_example / N +
    # s2_residual / (n N). The spreads of the row and column means each hold the residual once
    # more (row: + s2_residual / N, column: + s2_residual / n), so it is taken out once.
    residual = d - per_seed[:, None] - per_example[None, :] + per_seed.mean()
    parts = np.array([per_seed.var(ddof=1) / seeds, per_example.var(ddof=1) / examples,
                      -np.sum(residual ** 2) / ((seeds - 1) * (examples - 1)) / (seeds * examples)])
    dof = np.array([seeds - 1, examples - 1, (seeds - 1) * (examples - 1)])
    variance = max(float(parts.sum()), float(parts[0]))  # never below the seeds' own share
    # Welch-Satterthwaite degrees of freedom of the sum, rounded down (conservative).
    df = max(1, int(variance ** 2 / np.sum(parts ** 2 / dof))) if variance > 0 else seeds - 1
    se = math.sqrt(variance)
    diff, half = float(per_seed.mean()), t975(df) * se
    low, high = diff - half, diff + half
    error_a, error_b = 1.0 - a.mean(axis=1), 1.0 - b.mean(axis=1)
    return {"diff": diff, "ci": [low, high], "se": se, "df": df, "significant": bool(low > 0.0 or high < 0.0),
            "wins": int(np.sum(error_a < error_b)), "ties": int(np.sum(error_a == error_b)), "n": seeds}


def paired_by_seed(mine, theirs):
    """`paired_difference` of {seed: boolean vector} against a baseline's {seed: boolean vector}
    on the seeds both have, with "seeds" added; None where they share fewer than 2."""
    seeds = sorted(set(mine) & set(theirs))
    if len(seeds) < 2:
        return None
    return {**paired_difference(np.stack([mine[s] for s in seeds]), np.stack([theirs[s] for s in seeds])),
            "seeds": seeds}
