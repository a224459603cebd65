"""What counts as a number or an integer in an argument: NumPy scalars too (keras-tuner and
NumPy grids give them), never bools, never NaN or infinities."""
import math
import numbers


def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
