"""Pruning schedules: `schedule(step) -> (should_prune, fraction)`.

`fraction` is the share of the *remaining* weights to remove at that step, the
quantity `prune()` takes. A schedule is a pure function of the step, so a
resumed run prunes at the same steps as an uninterrupted one.
"""
import dataclasses

from tflth.arguments import is_integer, is_number


def _check(fraction):
    if not (is_number(fraction) and 0.0 <= fraction < 1.0):
        raise ValueError(f"fraction={fraction!r} must be in [0, 1)")


def _steps(schedule, *names, low=0):
    for name in names:
        value = getattr(schedule, name)
        if not (is_integer(value) and value >= low):
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")


@dataclasses.dataclass(frozen=True)
class OneShot:
    """Prune once, at `step`."""
    step: int
    fraction: float

    def __post_init__(self):
        _check(self.fraction)
        _steps(self, "step")

    def __call__(self, step):
        return step == self.step, self.fraction


@dataclasses.dataclass(frozen=True)
class Every:
    """Prune `fraction` of what remains at steps start + every, start + 2 * every, ... before `end`
    (fraction 0 with a callback's `threshold`: prune by the threshold alone)."""
    every: int
    fraction: float = 0.0
    start: int = 0
    end: int | None = None

    def __post_init__(self):
        _check(self.fraction)
        _steps(self, "every", low=1)
        _steps(self, "start")
        if self.end is not None:
            _steps(self, "end")

    def __call__(self, step):
        due = (step > self.start and (self.end is None or step < self.end)
               and (step - self.start) % self.every == 0)
        return due, self.fraction


@dataclasses.dataclass(frozen=True)
class PolynomialDecay:
    """Gradual pruning (Zhu & Gupta 2017): sparsity rises from `initial` to `target`
    between `begin_step` and `end_step`, with a step every `frequency` steps and one at
    `end_step`, so the target is reached even when the two are not a multiple apart."""
    target: float
    begin_step: int
    end_step: int
    frequency: int = 100
    initial: float = 0.0
    power: float = 3.0

    def __post_init__(self):
        _check(self.target)
        _check(self.initial)
        _steps(self, "begin_step", "end_step")
        _steps(self, "frequency", low=1)
        if not (is_number(self.power) and self.power > 0):
            raise ValueError(f"power={self.power!r} must be a finite number > 0")
        if self.initial > self.target:
            raise ValueError(f"initial={self.initial!r} must be <= target={self.target!r} (sparsity only rises)")
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step={self.end_step} must be > begin_step={self.begin_step}")

    def sparsity(self, step):
        t = min(max(step - self.begin_step, 0) / (self.end_step - self.begin_step), 1.0)
        return self.target + (self.initial - self.target) * (1.0 - t) ** self.power

    def __call__(self, step):
        due = self.begin_step <= step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0 or step == self.end_step)
        if not due:
            return False, 0.0
        # The sparsity of the last pruning step (the end step may fall between two frequencies).
        last = self.begin_step + (step - self.begin_step - 1) // self.frequency * self.frequency
        previous = self.sparsity(last) if step > self.begin_step else 0.0
        # Fraction of the remaining weights that takes sparsity from `previous` to now.
        return True, 1.0 - (1.0 - self.sparsity(step)) / (1.0 - previous)
