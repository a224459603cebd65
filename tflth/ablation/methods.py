"""The methods of the ablation study, each as the hyperparameters of one sparse-training run
(`tflth.trainer`) that ends at a given % of weights kept, with the shared data, model and
training of the study; IMP is the lottery runner's.

Every method but IMP trains for the study's T iterations once (its budget: T). Where a method
needs steps of its own, they are fractions of T, stated here:
- oneshot: magnitude pruning once at T/2, then T/2 of fine-tuning;
- gradual: magnitude, Zhu & Gupta's cubic schedule from T/10 to 3T/4, every 100 iterations;
- snip: SNIP at initialisation from one batch, global (Lee et al. 2019);
- random: random ERK masks at initialisation, never changed (RigL's "static" control: SET and RigL
  minus the rewiring);
- set, rigl: random ERK masks at initialisation, then SET / RigL updates every 100 iterations
  (T/10 on a budget under 1,000 iterations) until 3T/4 (drop fraction 0.3, cosine decay; Evci et al. 2020);
- l0: L0 weight gates (lambda 1 per example, as recipes/flags/mnist_l0_weight.cfg), pruned by
  gate probability with the cubic schedule from T/10 to 3T/4;
- svd: sparse variational dropout (log-uniform prior, local reparameterisation, KL warm-up
  from T/20 over T/6), pruned by log alpha with the cubic schedule from T/5 to 3T/4;
- horseshoe: horseshoe prior (w~ scale capped at 0.2, local reparameterisation, the same
  warm-up), pruned by the magnitude of the deployed weights (kernel times E[s z]), as svd;
- snr: N(0, 1) prior, Flipout, pruned by signal-to-noise ratio from T/10 to 0.7T
  (recipes/flags/mnist_bayes_snr.cfg);
- imp: iterative magnitude pruning with rewinding to initialisation, global, levels of
  1 - 0.5^(1/3) = 20.6% each, so levels 10, 13, 17 and 20 keep 9.9%, 5.0%, 2.0% and 0.98%
  (budget: T per level); the study reports the level nearest each target;
- imp_late: the same, rewinding to iteration K_LATE = T/50 (late rewinding, Frankle et al. 2020;
  its budget adds the K_LATE iterations trained once);
- imp_lr: the same, each level retraining the previous level's trained weights with the
  optimizer and learning-rate schedule started afresh (learning-rate rewinding, Renda et al.
  2020; with the study's constant learning rate that is fine-tuning for T iterations);
- imp_layerwise: imp with every layer pruned by the same fraction per level.

Variants, written `method:variant`, keep a method's training and change one thing:
- for the sparse-training methods, the pruning score (`snr:magnitude`: the N(0, 1) Flipout
  training pruned by |posterior mean| instead of signal-to-noise; `svd:random`, `l0:magnitude`,
  `horseshoe:snr`, ...), to separate the ranking from the training;
- for the IMP methods, a control branch of the lottery runner at the study's levels
  (`imp:reinit`, `imp:random_prune`, `imp:continue`: tflth/lottery/branches.py).

Allocation across layers: random, set and rigl use ERK; every other method ranks all weights
together (one global threshold), as IMP does here (imp_layerwise excepted).
"""
import math

from tflth.lottery.branches import CONTROLS
from tflth.pruning import available_scores
from tflth.trainer.hparams import SparsityHparams

IMP_FRACTION = 1.0 - 0.5 ** (1.0 / 3.0)
"""The IMP arms' pruning fraction per level: the weights kept halve every three levels."""
# {name: PruningHparams arguments of the lottery run} (`late` rewinding: see rewind_iteration).
IMP = {"imp": dict(scope="global", fraction_output=-1.0),
       "imp_late": dict(scope="global", fraction_output=-1.0, late=True),
       "imp_lr": dict(scope="global", fraction_output=-1.0, rewind_weights=False),
       "imp_layerwise": dict(scope="layerwise", fraction_output=-1.0)}


def late_iteration(iterations):
    """imp_late's rewind point: T/50 (1,000 of the paper's 50,000 iterations)."""
    return max(1, iterations // 50)


def _gradual(score, keep, iterations, start, end=0.75, **extra):
    return dict(prune_score=score, prune_to=keep, prune_start=int(iterations * start),
                prune_end=int(iterations * end), prune_every=100, **extra)


def _at_init(score, keep, scope, **extra):
    return dict(prune_score=score, prune_schedule="oneshot", prune_start=0, prune_to=keep, prune_scope=scope,
                **extra)


def _dst_every(iterations):
    return max(1, min(100, iterations // 10))  # RigL's 100; fewer on a short (test) budget


def _bayes(prior, estimator):
    return dict(prior=prior, estimator=estimator, strength=1.0, mc_samples=0)


def _warmup(iterations):
    return dict(kl_warmup_start=iterations // 20, kl_warmup=iterations // 6)


METHODS = {
    "oneshot": lambda keep, t: dict(prune_score="magnitude", prune_schedule="oneshot", prune_start=t // 2,
                                    prune_to=keep),
    "gradual": lambda keep, t: _gradual("magnitude", keep, t, 0.1),
    "snip": lambda keep, t: _at_init("snip", keep, "global"),
    "random": lambda keep, t: _at_init("random", keep, "erk"),
    "set": lambda keep, t: _at_init("random", keep, "erk", dst="set", dst_every=_dst_every(t)),
    "rigl": lambda keep, t: _at_init("random", keep, "erk", dst="rigl", dst_every=_dst_every(t)),
    "l0": lambda keep, t: dict(penalty="l0", gates="weight", strength=1.0, **_gradual("inclusion", keep, t, 0.1)),
    "svd": lambda keep, t: {**_bayes("log_uniform", "local_reparam"), **_warmup(t),
                            **_gradual("log_alpha", keep, t, 0.2)},
    "horseshoe": lambda keep, t: {**_bayes("horseshoe", "local_reparam"), **_warmup(t),
                                  "prior_args": "max_weight_scale=0.2", **_gradual("magnitude", keep, t, 0.2)},
    "snr": lambda keep, t: {**_bayes("normal", "flipout"), **_gradual("snr", keep, t, 0.1, end=0.7)},
}
"""The one-training methods: name -> (keep %, iterations) -> their sparse-training flags."""
NAMES = tuple(IMP) + tuple(METHODS)
"""Every method the ablation runs, IMP arms first."""


def split(method):
    """`method:variant` -> (method, variant or None)."""
    base, _, variant = method.partition(":")
    return base, variant or None


def is_imp(method):
    return split(method)[0] in IMP


def imp_pruning(method, iterations):
    """The PruningHparams arguments of IMP method `method` (its variant ignored)."""
    kw = dict(IMP[split(method)[0]], fraction=IMP_FRACTION)
    if kw.pop("late", False):
        kw["rewind_iteration"] = late_iteration(iterations)
    return kw


def sparsity_hparams(method, keep, iterations):
    """The SparsityHparams of sparse-training `method` (`name` or `name:score`) ending at `keep` %
    of the weights."""
    base, score = split(method)
    kw = METHODS[base](keep, iterations)
    kw.setdefault("penalty", "none")
    if score:
        kw["prune_score"] = score
    return SparsityHparams(**kw)


def imp_levels(keep):
    """The lottery level whose % of weights kept is nearest `keep` (levels of IMP_FRACTION)."""
    return max(1, round(math.log(keep / 100.0) / math.log(1.0 - IMP_FRACTION)))


def imp_kept(level):
    """The % of weights an IMP arm keeps at `level`."""
    return 100.0 * (1.0 - IMP_FRACTION) ** level


def check_methods(methods):
    def known(method):
        base, variant = split(method)
        allowed = CONTROLS if base in IMP else available_scores() if base in METHODS else ()
        return base in NAMES and (variant in allowed if ":" in method else True)
    unknown = [m for m in methods if not known(m)]
    if unknown or not methods or len(set(methods)) < len(methods):
        problem = "unknown " + ", ".join(unknown) if unknown else "repeated names" if methods else "empty"
        raise ValueError(f"--methods={','.join(methods)!r}: {problem}; allowed: {', '.join(NAMES)}, each "
                         f"optionally as method:variant (a score, {', '.join(available_scores())}; for the imp "
                         f"methods a control branch, {', '.join(CONTROLS)})")


def check_keep(keep):
    """--keep: % of weights kept, each in (0, 100), decreasing (sparsities increasing)."""
    if not keep or any(not 0 < k < 100 for k in keep):
        raise ValueError(f"--keep={','.join(map(str, keep))!r}: give % of weights kept, each in (0, 100)")
    if any(a <= b for a, b in zip(keep, keep[1:])):
        raise ValueError(f"--keep={','.join(map(str, keep))!r}: must decrease (sparsities increasing), "
                         "e.g. 10,5,2")

