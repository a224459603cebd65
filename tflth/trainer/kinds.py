"""What the sparse-training runner does for each kind of model: how its layers are built from the
flags, which callbacks train it, what happens after training and what else is measured. The
runner asks `kind_of(sparsity)` and calls the hooks; it names no family, so a new one is one
`register(Kind(...))` here (or from your code), before the runner is used.

The kinds, in the order they are asked whether they apply:
- "bayesian" (--prior): the --estimator family's layers, the KL warm-up, test-set calibration;
- "l0" (--penalty=l0): L0 gates, closed test-time gates turned into masks after training;
- "masked" (the rest): masked layers with the --penalty regularizer, or none.
"""
import dataclasses
import math
from typing import Callable

import numpy as np

from tflth import bayes, l0, regularizers

_LAYER_KEYS = {"strength": "l0_lambda", "droprate_init": "droprate_init", "gate_l2": "l2"}


def _nothing(*_):
    return None


@dataclasses.dataclass(frozen=True)
class Kind:
    """Hooks, each given the `SparsityHparams` `s` (and what else it names)."""
    name: str
    applies: Callable           # (s) -> whether the flags choose this kind
    layers: Callable            # (s, n) -> (layer family name, keyword arguments of every Dense/Conv2D)
    label: Callable             # (s) -> how progress lines name the training
    method: Callable = lambda s: {}         # (s) -> metrics.json keys of tflth.schema.METHOD it sets itself
    callbacks: Callable = lambda s: []      # (s) -> Keras callbacks it trains with
    steps: Callable = lambda s: []          # (s) -> the steps at which those callbacks act
    finish: Callable = _nothing             # (model) after training, before the final test
    measure: Callable = None                # (model, data, s) -> extra metrics {key: value} (timed as "predictive")
    report: Callable = lambda metrics: []   # (metrics) -> lines to print


_KINDS = []


def register(kind):
    """Adds `kind`, asked before those registered earlier (so it can take over some flags)."""
    _KINDS.insert(0, kind)
    return kind


def kind_of(s):
    return next(kind for kind in _KINDS if kind.applies(s))


def scale_arguments(penalty, tau):
    """--penalty_scale as the arguments of each penalty that has a weight scale (the others,
    l1, lp, log_uniform and igg, have none; a list of penalties shares the flag)."""
    if tau and penalty in ("student_t", "horseshoe", "horseshoe_plus"):
        return {"scale": tau}
    if tau and penalty in ("log_t", "log_scale_t"):
        return {"loc": math.log(tau)}
    return {}


def _masked_layers(s, n):
    if any(set(kw) - {"strength"} for kw in s.overrides.values()):
        raise ValueError(f"--per_layer={s.per_layer!r}: only 'strength' applies to --penalty={s.penalty}")
    if s.penalty == "none":
        if s.overrides:
            raise ValueError(f"--per_layer={s.per_layer!r}: --penalty=none has nothing to set per layer")
        return "masked", {}

    def penalty(strength):
        return regularizers.PENALTIES[s.penalty](strength / n, **scale_arguments(s.penalty, s.penalty_scale))
    per_layer = {name: {"kernel_regularizer": penalty(kw["strength"])} for name, kw in s.overrides.items()}
    return "masked", dict(kernel_regularizer=penalty(s.strength), per_layer=per_layer)


def _l0_layers(s, n):
    per_layer = {name: {_LAYER_KEYS[k]: v for k, v in kw.items()} for name, kw in s.overrides.items()}
    return "l0", dict(gates=s.gates, l0_lambda=s.strength, l2=s.gate_l2, droprate_init=s.droprate_init,
                      per_layer=per_layer)


def calibration(model, data, samples):
    """Test-set calibration of the mean mode and of the Monte-Carlo predictive distribution."""
    x, y = zip(*((np.asarray(a), np.asarray(b)) for a, b in data["test"]))
    x, y = np.concatenate(x), np.concatenate(y)
    out = {"mean": bayes.calibration(bayes.predict(model, x, samples=0), y)}
    if samples:
        out["mc"] = {"samples": samples, **bayes.calibration(bayes.predict(model, x, samples=samples), y)}
    return out


def _calibration_line(metrics):
    c = metrics["calibration"]
    mc = c.get("mc")
    return [f"calibration: mean mode NLL {c['mean']['nll']:.4f} ECE {100 * c['mean']['ece']:.2f}%"
            + (f"; {mc['samples']}-sample predictive error {100 * mc['error']:.2f}% NLL {mc['nll']:.4f} "
               f"ECE {100 * mc['ece']:.2f}%" if mc else "")]


register(Kind("masked", applies=lambda s: True, layers=_masked_layers, label=lambda s: s.penalty))
register(Kind("l0", applies=lambda s: s.penalty == "l0", layers=_l0_layers, label=lambda s: s.penalty,
              finish=l0.masks_from_gates))
register(Kind(
    "bayesian", applies=lambda s: s.prior != "none",
    layers=lambda s, n: (s.estimator, dict(prior=s.prior_object, scale_init=s.scale_init)),
    label=lambda s: f"{s.prior} {s.estimator}", method=lambda s: {"estimator": s.estimator},
    callbacks=lambda s: [bayes.KLWarmup(s.kl_warmup, s.kl_warmup_start)] if s.kl_warmup else [],
    steps=lambda s: [s.kl_warmup_start, s.kl_warmup] if s.kl_warmup else [],
    measure=lambda model, data, s: {"calibration": calibration(model, data, s.mc_samples)},
    report=_calibration_line))
