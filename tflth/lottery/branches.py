"""Where each branch of a level starts: its masks and its weights.

main          the winning ticket: the level's masks, survivors rewound to iteration k
reinit        control: the same masks, freshly initialised weights
random_prune  control: random masks with the same per-layer sparsity, rewound weights
continue      control: the same masks on the previous level's final weights (no rewinding)
"""
import numpy as np

from tflth import io, pruning
from tflth.lottery import paths

CONTROLS = ("reinit", "random_prune", "continue")


def _load(model, weights_file, masks):
    model.load_weights(weights_file)  # masks in the file are overwritten next
    pruning.set_masks(model, masks)


def prepare(branch, model, replicate, level, seed):
    """Puts the branch's masks and start weights into `model`; returns the masks."""
    masks = io.read_npz(paths.level_masks(replicate, level))
    if branch == "main":
        _load(model, paths.rewind_weights(replicate), masks)
    elif branch == "reinit":
        pruning.set_masks(model, masks)
        pruning.restore_weights(model, pruning.fresh_weights(model, seed=_branch_seed(seed, level, 1)))
    elif branch == "random_prune":
        masks = pruning.random_masks_like(masks, seed=_branch_seed(seed, level, 2))
        _load(model, paths.rewind_weights(replicate), masks)
    elif branch == "continue":
        _load(model, paths.final_weights(paths.branch_dir(replicate, level - 1, "main")), masks)
    else:
        raise ValueError(f"branch={branch!r} is unknown; allowed: {list(paths.BRANCHES)}")
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

    All three dicts are {layer: array}; `alive` is this level's mask. Answers "do the
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
