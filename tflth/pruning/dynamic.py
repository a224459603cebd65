"""Dynamic sparse training: the connections change while the sparsity stays the same.

Every `every` steps before `end`, each prunable layer drops the `drop_fraction(step)` share of
its active weights with the smallest magnitude and grows as many among the inactive ones (those
just dropped included):
- `SET` (Mocanu et al. 2018, "Scalable training of artificial neural networks with adaptive
  sparse connectivity"): grows at random;
- `RigL` (Evci, Gale, Menick, Castro & Elsen 2020, "Rigging the lottery"): grows where the
  magnitude of the loss gradient is largest, from one batch of `data`.
The drop fraction decays as alpha / 2 (1 + cos(pi step / end)) (RigL's cosine schedule, which
the RigL paper also gives SET; `decay="constant"` keeps SET's own constant zeta = alpha).
A grown weight starts at zero with fresh optimizer slots (moments); one dropped and grown
back in the same update keeps its value, as RigL's code does. Start from a sparse model
(`prune_to(model, s, score="random", allocation="erk")`): these callbacks keep its per-layer
counts.
"""
import math

import numpy as np

from tflth.arguments import is_integer, is_number
from tflth.pruning.prunable import require
from tflth.pruning import saliency
from tflth.pruning.callbacks import StepCallback
from tflth.pruning.masks import get_masks, prunable_layers, set_masks

DECAYS = ("cosine", "constant")


def drop_fraction(step, alpha, end, decay="cosine"):
    """The share of active weights replaced at `step` (0 from `end` on)."""
    if step >= end:
        return 0.0
    return alpha if decay == "constant" else alpha / 2.0 * (1.0 + math.cos(math.pi * step / end))


def drop_and_grow(weights, mask, count, grow_score):
    """(new mask, new connections): the `count` active weights of smallest |w| dropped, then the
    `count` positions not active after the drop with the highest `grow_score` grown."""
    flat_mask = mask.reshape(-1).astype(bool)
    active = np.flatnonzero(flat_mask)
    count = min(count, active.size, flat_mask.size - active.size)
    if count <= 0:
        return mask, np.zeros_like(mask, dtype=bool)
    after = flat_mask.copy()
    after[active[np.argsort(np.abs(weights.reshape(-1)[active]), kind="stable")[:count]]] = False
    candidates = np.flatnonzero(~after)
    grown = candidates[np.argsort(-grow_score.reshape(-1)[candidates], kind="stable")[:count]]
    new = after.copy()
    new[grown] = True
    fresh = new & ~flat_mask
    return new.reshape(mask.shape).astype(np.float32), fresh.reshape(mask.shape)


def _optimizer_slots(optimizer, variable, all_variables):
    """The optimizer's slot variables (moments) of `variable`. Keras has no public map from a
    variable to its slots; it names them `<variable path, '/' as '_'>_<slot name>`
    (`Optimizer.add_variable_from_reference`), so a slot belongs to the longest such prefix
    (`dense_kernel_rho_momentum` is kernel_rho's, not kernel's)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    prefixes = {v.path.replace("/", "_") + "_": v for v in all_variables}
    out = []
    for slot in optimizer.variables:
        owners = [p for p in prefixes if slot.name.startswith(p)]
        if owners and prefixes[max(owners, key=len)] is variable and tuple(slot.shape) == tuple(variable.shape):
            out.append(slot)
    return out


class _DynamicSparsity(StepCallback):
    def __init__(self, end, every=100, alpha=0.3, decay="cosine", exclude=(), seed=0, verbose=0):
        super().__init__()
        for name, value, low in (("end", end, 1), ("every", every, 1)):
            if not is_integer(value) or value < low:
                raise ValueError(f"{type(self).__name__}: {name}={value!r} must be an integer >= {low}")
        if not is_number(alpha) or not 0.0 < alpha < 1.0:
            raise ValueError(f"{type(self).__name__}: alpha={alpha!r} (the drop fraction) must be in (0, 1)")
        if decay not in DECAYS:
            raise ValueError(f"{type(self).__name__}: decay={decay!r} is unknown; allowed: {list(DECAYS)}")
        self.end, self.every, self.alpha, self.decay = end, every, float(alpha), decay
        self.exclude, self.seed, self.verbose = tuple(exclude), seed, verbose
        self.updates = []  # (step, connections replaced)

    def _layers(self):
        return [layer for layer in prunable_layers(self.model) if layer.name not in self.exclude]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        names = [layer.name for layer in prunable_layers(self.model)]
        unknown = [name for name in self.exclude if name not in names]
        if unknown:
            raise ValueError(f"{type(self).__name__}: exclude={unknown} are not prunable layers; allowed: {names}")
        require(self._layers(), "kernel_is_weights", type(self).__name__)  # drop and grow the kernel alone

    def at_step(self, step):
        if step == 0 or step % self.every or step >= self.end:
            return
        fraction = drop_fraction(step, self.alpha, self.end, self.decay)
        layers = self._layers()
        scores = self.grow_scores(layers, step)
        masks = get_masks(self.model)
        if all(masks[layer.name].all() for layer in layers):  # checked here: a pruning callback may act at step 0
            raise ValueError(f"{type(self).__name__}: no layer is sparse at step {step}, so there is nothing to "
                             "rewire; prune first (tflth.pruning.prune_to(model, sparsity, score='random', "
                             "allocation='erk'))")
        new, replaced = {}, 0
        for layer in layers:
            mask = masks[layer.name]
            count = int(fraction * mask.sum())
            new[layer.name], fresh = drop_and_grow(np.asarray(layer.kernel), mask, count, scores[layer.name])
            replaced += int(fresh.sum())
            if fresh.any():  # 0 already unless the layer is straight-through (it keeps dense values)
                layer.kernel.assign(np.where(fresh, 0.0, np.asarray(layer.kernel)).astype(layer.kernel.dtype))
            for slot in _optimizer_slots(self.model.optimizer, layer.kernel, self.model.trainable_variables):
                slot.assign(np.where(fresh, 0.0, np.asarray(slot)).astype(slot.dtype))
        set_masks(self.model, new)
        self.updates.append((step, replaced))
        if self.verbose:
            print(f"\n[tflth] step {step}: {type(self).__name__} replaced {replaced} connections")

    def grow_scores(self, layers, step):
        raise NotImplementedError


class SET(_DynamicSparsity):
    """Sparse Evolutionary Training: drop the smallest weights, grow random connections.

    Args:
      end: the last update is before this step (RigL: 75% of training).
      every: steps between updates (RigL: 100).
      alpha: the drop fraction at step 0 (0.3, as both papers).
      decay: "cosine" (RigL's schedule) or "constant".
      exclude: names of prunable layers left static.
      seed: the random growth's seed (with the step and the layer, so a resumed run grows alike).
    """

    def grow_scores(self, layers, step):
        return {layer.name: np.random.default_rng((self.seed, step, i)).random(tuple(layer.kernel.shape))
                for i, layer in enumerate(layers)}


class RigL(_DynamicSparsity):
    """Rigging the lottery: drop the smallest weights, grow where |dL/dw| is largest.

    Args: those of `SET`, and
      data: an iterable of (x, y) training batches (a tf.data.Dataset), each update reading the
        next one, or a function step -> (x, y) (a resumed run then reads the same batches). RigL
        computes the dense gradient of the update step's own batch; here it is one more batch.
      loss: the loss to differentiate; default: the compiled model's.
    """

    def __init__(self, end, data, every=100, alpha=0.3, decay="cosine", exclude=(), seed=0, verbose=0, loss=None):
        super().__init__(end, every, alpha, decay, exclude, seed, verbose)
        if data is None:
            raise ValueError("RigL: data=None; pass the training batches (grown connections are chosen by gradient)")
        self.data, self.loss, self._batches = data, loss, None

    def grow_scores(self, layers, step):
        batch = self.data(step) if callable(self.data) else self._next_batch()
        grads = saliency.kernel_gradients(self.model, layers, tuple(batch[:2]), self.loss, score="rigl")[0]
        return {name: np.abs(g) for name, g in grads.items()}

    def _next_batch(self):
        if self._batches is None:
            self._batches = iter(self.data)
        batch = next(self._batches, None)
        if batch is None:  # a finite iterable ran out: start it again
            self._batches = iter(self.data)
            batch = next(self._batches)
        return batch
