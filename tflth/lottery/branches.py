"""Where each branch of a level starts: its masks, its weights and its optimizer state.

main          the winning ticket: the level's masks, survivors rewound to iteration k (with
              `rewind_weights=False`, learning-rate rewinding: the previous level's trained weights)
reinit        control: the same masks, freshly initialised weights
random_prune  control: random masks with the same per-layer sparsity, rewound weights
continue      control: the same masks on the previous level's final weights (not rewound)

Every branch of a level >= 1 trains iterations k..T with the same learning-rate schedule,
and starts from the same optimizer policy (`--optimizer_state`): `fresh` (zero moments,
step 0, the schedule shifted to resume at k; as open_lth) or `rewind` (the optimizer state
saved at iteration k, step counter included).
"""
import numpy as np

from tflth import engine, pruning, runs
from tflth.lottery import paths
from tflth.schema import CONTROLS


def _rewound(model, masks, rewind, replicate, level, seed):
    engine.state.restore(model, rewind, optimizer=False, masks=False)
    return masks


def _reinit(model, masks, rewind, replicate, level, seed):
    pruning.restore_weights(model, pruning.fresh_weights(model, seed=_branch_seed(seed, level, 1)))
    return masks


def _random_prune(model, masks, rewind, replicate, level, seed):
    _rewound(model, masks, rewind, replicate, level, seed)
    return pruning.random_masks_like(masks, seed=_branch_seed(seed, level, 2))


def _continue(model, masks, rewind, replicate, level, seed):
    runs.load_final_weights(model, paths.branch_dir(replicate, level - 1, "main"))
    return masks


# branch -> start(model, level masks, rewind state, replicate folder, level, seed) -> its masks,
# after putting its start weights into `model`; tflth.schema.BRANCHES names them in order.
STARTS = {"main": _rewound, "reinit": _reinit, "random_prune": _random_prune, "continue": _continue}


def prepare(branch, model, replicate, level, seed, optimizer_state="fresh", rewind_weights=True):
    """Puts the branch's masks, start weights and optimizer state into the compiled `model`;
    returns the masks."""
    if branch not in STARTS:
        raise ValueError(f"branch={branch!r} is unknown; allowed: {list(paths.BRANCHES)}")
    if branch == "main" and not rewind_weights and level > 0:
        branch = "continue"  # learning-rate rewinding: the ticket goes on from the trained weights
    rewind = engine.state.load(paths.rewind_state(replicate))
    masks = STARTS[branch](model, paths.read_level_masks(replicate, level), rewind, replicate, level, seed)
    pruning.set_masks(model, masks)
    if optimizer_state == "rewind":
        engine.state.restore(model, rewind, weights=False)
    else:  # also undoes the optimizer state that load_weights brings with a .weights.h5 file
        pruning.reset_optimizer(model)
    return masks


def _branch_seed(seed, level, salt):
    # Distinct from the model's init seed and from every other level and branch.
    return int(np.random.default_rng([seed, level, salt]).integers(2**31))


def overlap(a, b):
    """Jaccard overlap of two mask dicts: shared survivors / survivors of either."""
    both = sum(int(np.sum((a[n] > 0) & (b[n] > 0))) for n in a)
    either = sum(int(np.sum((a[n] > 0) | (b[n] > 0))) for n in a)
    return both / either if either else 1.0


def movement(final, start, alive, next_masks):
    """Mean |w_final - w_start| of the weights that survive the next pruning vs those it removes.

    All four are {layer: array}; `start` holds the weights at the rewind point (iteration k,
    where every level's training starts) and `alive` is this level's mask. Answers "do the
    weights we keep move more during training?" (Zhou et al. 2019 ask the same).
    """
    kept, removed = [], []
    for name in final:
        moved = np.abs(final[name] - start[name])
        kept.append(moved[next_masks[name] > 0])
        removed.append(moved[(alive[name] > 0) & (next_masks[name] == 0)])
    kept, removed = np.concatenate(kept), np.concatenate(removed)
    return {"kept": float(kept.mean()) if kept.size else None,
            "removed": float(removed.mean()) if removed.size else None}
