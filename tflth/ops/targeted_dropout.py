"""Targeted dropout (Gomez, Zhang, Kamalakara, Madaan, Swersky, Gal & Hinton 2019,
"Learning Sparse Networks Using Targeted Dropout").

At each training step, the lowest-magnitude fraction gamma ("targeting proportion",
`fraction`) of a kernel's weights or units are the candidates, and each candidate is
dropped (zeroed) independently with probability alpha ("drop rate", `rate`):
- weight dropout: per output unit (column of the kernel reshaped to (-1, units)), the
  floor(gamma * fan_in) weights of smallest |w|;
- unit dropout: the floor(gamma * units) columns of smallest L2 norm; a dropped unit's
  whole column is zeroed.
As in the authors' code (for-ai/TD, models/utils/dropouts.py), the kept weights are not
rescaled, and the candidates are ranked on the weights of this step (no gradient flows
through the ranking). Zeros (pruned weights) rank lowest and stay zero.
"""
import numbers

from keras import ops

from tflth.ops import noise

UNITS = ("weight", "unit")


def _count(fraction, n):
    """floor(fraction * n), forgiving float error (0.29 * 100 is 28.999...)."""
    if isinstance(fraction, numbers.Real):
        return min(int(float(fraction) * n + 1e-9), n)
    return ops.cast(ops.floor(ops.cast(fraction, "float32") * n + 1e-6), "int32")


def _lowest(scores, fraction, axis):
    """True at the floor(fraction * n) smallest entries of `scores` along `axis` (n its length).

    A rank (argsort of argsort) gives exactly that many even when scores tie, as the
    zeros of pruned weights do; which of the tied ones is taken is arbitrary.
    """
    ranks = ops.argsort(ops.argsort(ops.stop_gradient(scores), axis=axis), axis=axis)
    return ranks < _count(fraction, scores.shape[axis])


def _is_zero(x):  # a Python or numpy number; a tensor takes the general path
    return isinstance(x, numbers.Real) and x == 0


def _apply(kernel, drop):
    return kernel * ops.cast(ops.logical_not(drop), kernel.dtype)


def targeted_weight_dropout(kernel, fraction, rate, seed):
    """`kernel` with each of the lowest-|w| `fraction` of every column dropped with
    probability `rate`.

    Args:
      kernel: a Dense (in, units) or Conv (..., in, units) kernel; the last axis is the output.
      fraction: gamma in [0, 1]: share of each column's weights that are candidates.
      rate: alpha in [0, 1]: probability that a candidate is dropped.
        Both may be scalar tensors (a schedule); numbers skip work when 0.
      seed: a `keras.random.SeedGenerator` (fresh draws per call) or an int (the same
        draws at every call).
    """
    if _is_zero(rate) or _is_zero(fraction):
        return kernel
    columns = ops.reshape(kernel, (-1, kernel.shape[-1]))
    candidates = ops.reshape(_lowest(ops.abs(columns), fraction, axis=0), kernel.shape)
    drop = ops.logical_and(candidates, noise.uniform(kernel.shape, seed) < rate)
    return _apply(kernel, drop)


def targeted_unit_dropout(kernel, fraction, rate, seed):
    """`kernel` with each of the lowest-L2-norm `fraction` of its columns (output units)
    zeroed with probability `rate`; arguments as `targeted_weight_dropout`."""
    if _is_zero(rate) or _is_zero(fraction):
        return kernel
    units = kernel.shape[-1]
    columns = ops.reshape(kernel, (-1, units))
    norms = ops.sqrt(ops.sum(ops.square(ops.cast(columns, "float32")), axis=0))
    drop = ops.logical_and(_lowest(norms, fraction, axis=0), noise.uniform((units,), seed) < rate)
    return _apply(kernel, drop)  # (units,) broadcasts over the last axis


DROPOUTS = {"weight": targeted_weight_dropout, "unit": targeted_unit_dropout}
