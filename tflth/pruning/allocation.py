"""How a target sparsity is shared among layers (pure functions of kernel shapes).

- "uniform": every layer at the same sparsity;
- "global": no per-layer target: one score threshold over all layers decides (`prune_to`);
- "erk": Erdős–Rényi-Kernel (Evci et al. 2020, "Rigging the lottery", after Mocanu et al.'s
  Erdős–Rényi): a layer's density is proportional to sum(kernel shape) / prod(kernel shape), so
  small layers stay denser; a layer whose density would pass 1 is kept dense and the rest share
  what remains, as RigL's `sparse_utils` does.

`overrides` fix some layers' sparsities (e.g. {"first": 0.0}: a dense first layer, as RigL and
SNIP keep theirs in some experiments); the others share what remains so that the whole model
still reaches the target. Keys are layer names, roles ("conv", "dense", "output") or "first" /
"last". A target the fixed layers make impossible is a ValueError naming the allocation.
"""
import numpy as np

from tflth.arguments import is_number

ALLOCATIONS = ("uniform", "global", "erk")
"""How `prune_to` shares a target sparsity among layers (see the module docstring)."""


def _fraction(value, what):
    if not is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{what}={value!r} must be a number in [0, 1)")
    return float(value)


def resolve_overrides(names, roles, overrides):
    """{layer name: sparsity} from override keys (layer names, roles, "first", "last"); a name
    wins over a role or position."""
    overrides = dict(overrides or {})
    positions = {"first": names[:1], "last": names[-1:]}
    allowed = list(names) + sorted(set(roles.values())) + list(positions)
    out = {}
    for precise in (False, True):  # roles and positions first, then names over them
        for key, value in overrides.items():
            if key not in allowed:
                raise ValueError(f"overrides key {key!r} is neither a prunable layer, a role nor first/last; "
                                 f"allowed: {allowed}")
            if (key in names) != precise:
                continue
            value = _fraction(value, f"overrides[{key!r}]")
            targets = [key] if key in names else positions.get(key) or [n for n in names if roles[n] == key]
            out.update({name: value for name in targets})
    return out


def erk_densities(shapes, budget):
    """{name: density} for `shapes` with `budget` kept weights in all, density ~ sum(shape) /
    prod(shape), layers that would pass density 1 kept dense."""
    raw = {name: sum(shape) / float(np.prod(shape)) for name, shape in shapes.items()}
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    dense = set()
    while True:
        rest = budget - sum(sizes[n] for n in dense)
        divisor = sum(raw[n] * sizes[n] for n in shapes if n not in dense)
        epsilon = rest / divisor if divisor else 0.0
        over = [n for n in shapes if n not in dense and raw[n] * epsilon > 1.0]
        if not over:
            return {n: 1.0 if n in dense else raw[n] * epsilon for n in shapes}
        dense.add(max(over, key=lambda n: raw[n]))


def allocate(shapes, sparsity, allocation="uniform", fixed=None):
    """{layer name: sparsity} reaching `sparsity` of all weights of `shapes` ({name: kernel shape}),
    the `fixed` layers at theirs; for "global", the fixed layers only (a threshold decides the rest)."""
    sparsity = _fraction(sparsity, "sparsity")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation={allocation!r} is unknown; allowed: {list(ALLOCATIONS)}")
    fixed = dict(fixed or {})
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    free = [name for name in shapes if name not in fixed]
    budget = (1.0 - sparsity) * sum(sizes.values()) - sum((1.0 - s) * sizes[n] for n, s in fixed.items())
    free_size = sum(sizes[n] for n in free)
    if not (0.0 <= budget <= free_size + 1e-6) or (budget > 0 and not free):
        raise ValueError(f"allocation={allocation!r} cannot reach sparsity={sparsity} with the overrides "
                         f"{fixed}: the other layers would keep {budget:.0f} of their {free_size} weights")
    if allocation == "global":
        return fixed
    if allocation == "uniform":
        density = {n: budget / free_size for n in free} if free else {}
    else:
        density = erk_densities({n: shapes[n] for n in free}, budget)
    return {**{n: 1.0 - density[n] for n in free}, **fixed}
