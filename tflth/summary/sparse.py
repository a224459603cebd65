"""Sparse-training run folders as variants, one per folder: its method, statistics over seeds,
the settings that tell it apart from the other folders, and the seeds it lacks."""
import json
import os

from tflth import schema

from .over_seeds import correct_by_seed, describe, mean_cost, paired
from .read import SummaryError, collect_sparse, read_hparams, section


# hparams with a column of their own (the method's name or Strength): never in "Other settings"
_SHOWN = ("penalty", "strength", "gates", "keep_percent", "prior", "estimator", "prune_score", "prune_to",
          "prune_threshold")
# hparams that mean something only for some rows: not listed in the other rows' "Other settings"
_ONLY_FOR = {"l0": ("gates", "gate_l2", "droprate_init"),
             "bayes": ("prior_args", "scale_init", "kl_warmup", "kl_warmup_start", "mc_samples"),
             "prune": ("prune_every", "prune_start", "prune_end", "prune_scope")}


def _flatten(hp):
    """{flag: value} of hparams.json (every field is a flag of the same name), without 'format'."""
    out = {}
    for key, value in (hp or {}).items():
        if isinstance(value, dict):
            out.update(value)
        elif key != "format":
            out[key] = value
    return out


def flag(value):
    """A flag's value as a command line writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if value == "" else str(value)


def _differing(flat_by_dir):
    """{run_dir: {flag: value}} of the hparams (other than those with a column) that differ
    between the folders, so that two rows never look alike without saying why."""
    known = [flat for flat in flat_by_dir.values() if flat]
    keys = sorted({k for flat in known for k in flat} - set(_SHOWN))
    # A field missing from an older folder's hparams.json was added later with its default: compare
    # only the folders that have it.
    differ = [k for k in keys if len({json.dumps(flat[k], sort_keys=True) for flat in known if k in flat}) > 1]
    out = {}
    for run_dir, flat in flat_by_dir.items():
        applies = {"l0": flat.get("penalty") == "l0", "bayes": flat.get("prior", "none") != "none",
                   "prune": bool(flat.get("prune_score"))}
        hidden = {k for kind, keys in _ONLY_FOR.items() if not applies[kind] for k in keys}
        out[run_dir] = {k: flat[k] for k in differ if k in flat and k not in hidden}
    return out


def _error(acc):
    return None if acc is None else 100.0 * (1.0 - acc)


def _variant(run_dir, records, unfinished, hp, settings):
    sparsity = section(hp, "sparsity")
    first = records[0] if records else {}
    penalty = sparsity.get("penalty", first.get("penalty"))
    strength = sparsity.get("strength", first.get("strength"))
    gates = sparsity.get("gates") if penalty == "l0" else None
    prior = sparsity.get("prior", first.get("prior")) or "none"  # older runs: no Bayesian layers
    estimator = sparsity.get("estimator", first.get("estimator")) if prior != "none" else None
    prune_score = sparsity.get("prune_score", first.get("prune_score")) or None
    prune_to, prune_threshold = (sparsity.get("prune_to") or None, sparsity.get("prune_threshold") or None) \
        if prune_score else (None, None)
    method = _method(penalty, gates, prior, estimator, prune_score, prune_to, prune_threshold)
    with_pruned = [r for r in records if r["pruned"]]
    pruned = None if not with_pruned else {
        "seeds": [r["seed"] for r in with_pruned],
        "keep_percent": sparsity.get("keep_percent", with_pruned[0]["pruned"]["keep_percent"]),
        "weights_kept": describe([r["pruned"]["weights_remaining"] for r in with_pruned]),
        "test_error": describe([_error(r["pruned"]["test_acc"]) for r in with_pruned]),
        "neurons": [r["pruned"]["neurons"] for r in with_pruned]}
    originals = sorted({r["original"] for r in records if r["original"]})
    return {"run_dir": os.path.normpath(run_dir), "label": _variant_label(method, penalty, strength, settings),
            "method": method, "penalty": penalty, "gates": gates, "strength": strength,
            "keep_percent": sparsity.get("keep_percent"), "prior": prior, "estimator": estimator,
            "prune_score": prune_score, "prune_to": prune_to, "prune_threshold": prune_threshold,
            "iterations": section(hp, "training").get("iterations"), "settings": settings,
            "seeds": [r["seed"] for r in records], "unfinished_seeds": unfinished,
            "weights_kept": describe([r["weights_remaining"] for r in records]),
            "architecture": {"original": originals[0] if len(originals) == 1 else None,
                             "neurons": [r["neurons"] for r in records]},
            "hidden_kept": describe([hidden_kept(r["neurons"], r["original"]) for r in records]),
            "final_test_error": describe([_error(r["final_test_acc"]) for r in records]),
            "early_stop_test_error": describe([_error(r["early_stop_test_acc"]) for r in records]),
            "early_stop_step": describe([r["early_stop_step"] for r in records]),
            "calibration": _calibration([r["calibration"] for r in records if r["calibration"]]),
            "pruned": pruned, "cost": mean_cost(records), "paired": None}


def _calibration(found):
    """Statistics over seeds of the Bayesian calibration (error and ECE in percent), None if no seed has it."""
    def stats(modes):
        return {"error": describe([m.get("error") for m in modes], 100.0),
                "nll": describe([m.get("nll") for m in modes]), "ece": describe([m.get("ece") for m in modes], 100.0)}
    mc = [c["mc"] for c in found if c.get("mc")]
    return None if not found else {
        "mean": stats([c["mean"] for c in found]),
        "mc": {"samples": sorted({m.get("samples") for m in mc}, key=str), **stats(mc)} if mc else None}


def _penalty_name(penalty, gates):
    return f"{penalty or '?'}" + (f" ({gates} gates)" if gates else "")


def _method(penalty, gates, prior="none", estimator=None, prune_score=None, prune_to=None, prune_threshold=None):
    """'l0 (neuron gates)', 'log_uniform prior (local_reparam)', '..., pruned by snr to 5%'."""
    name = _penalty_name(penalty, gates) if prior == "none" else f"{prior} prior" + (
        f" ({estimator})" if estimator else "")
    if prune_score:
        name += f", pruned by {prune_score}" + (f" to {flag(float(prune_to))}%" if prune_to else "") + (
            f" (threshold {prune_threshold})" if prune_threshold else "")
    return name


def _variant_label(method, penalty, strength, settings):
    label = method
    if penalty != "none" and strength is not None:
        label += f", strength {flag(float(strength))}"
    return label + "".join(f", {k}={flag(v)}" for k, v in settings.items())


def _variant_key(v):
    return (v["prior"] != "none", v["penalty"] != "none", str(v["penalty"]), str(v["gates"]), v["strength"] or 0.0,
            v["prior"], str(v["estimator"]), str(v["prune_score"]), -(v["prune_to"] or 100.0),
            json.dumps(v["settings"], sort_keys=True), v["run_dir"])


def aggregate_sparse(run_dirs, baseline=None):
    """(variants, pending): one variant per run folder with at least one finished seed, sorted
    by penalty, gates, strength (percentages: weights kept, test error = 100 * (1 - accuracy)),
    each with 'paired' against the folder `baseline` (--baseline) if given; pending = the folders
    with no finished seed yet. Raises SummaryError for corrupt files, a bad `baseline` or when no
    folder has a finished seed."""
    collected = {d: collect_sparse(d) for d in run_dirs}
    baseline = _baseline(baseline, run_dirs, collected)
    hps = {d: read_hparams(d) for d in run_dirs}
    pending = [os.path.normpath(d) for d in run_dirs if not collected[d][0]]
    done = [d for d in run_dirs if collected[d][0]]
    if not done:
        raise SummaryError(f"{', '.join(run_dirs)}: no {schema.sparse_metrics('<s>')} yet (no seed has finished)")
    settings = _differing({d: _flatten(hps[d]) for d in done})
    variants = [_variant(d, *collected[d], hps[d], settings[d]) for d in done]
    if baseline:
        correct = {os.path.normpath(d): correct_by_seed(collected[d][0]) for d in done}
        for v in variants:
            v["paired"] = None if v["run_dir"] == baseline else paired(correct[v["run_dir"]], correct[baseline])
    return sorted(variants, key=_variant_key), pending


def _baseline(baseline, run_dirs, collected):
    """The folder (normalised) of `run_dirs` that --baseline names, None without one. Raises
    SummaryError when it names none of them or one with fewer than 2 finished seeds."""
    if baseline is None:
        return None
    found = [d for d in run_dirs if os.path.realpath(d) == os.path.realpath(baseline)]
    if not found:
        raise SummaryError(f"--baseline={baseline}: not one of the run folders given ({', '.join(run_dirs)})")
    seeds = [r["seed"] for r in collected[found[0]][0]]
    if len(seeds) < 2:
        raise SummaryError(f"--baseline={baseline}: {len(seeds)} finished seed{'' if len(seeds) == 1 else 's'} "
                           f"({seed_list(seeds) or 'none'}); paired tests need at least 2")
    return os.path.normpath(found[0])


def missing_sparse(variants):
    """Lines naming, per variant, the seeds other variants have and it lacks, and its unfinished seeds."""
    every = sorted({s for v in variants for s in v["seeds"]})
    lines = []
    for v in variants:
        gone = [s for s in every if s not in v["seeds"] and s not in v["unfinished_seeds"]]
        parts = ([f"unfinished {_seeds(v['unfinished_seeds'])}"] if v["unfinished_seeds"] else []) + (
            [f"no {_seeds(gone)} (other variants have them)"] if gone else [])
        if parts:
            lines.append(f"{v['label']} ({os.path.basename(v['run_dir'])}): {'; '.join(parts)}")
    return lines


def _seeds(seeds):
    return ("seed " if len(seeds) == 1 else "seeds ") + seed_list(seeds)


def seed_list(seeds):
    """'0-4, 7' for [0, 1, 2, 3, 4, 7]."""
    runs, seeds = [], sorted(seeds)
    for s in seeds:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def hidden_kept(neurons, original):
    """% of hidden units kept: an architecture lists the inputs of each weighted layer, so after
    the first entry (the input features) come the hidden units: "208-135-51" of "784-300-100" is
    46.5. None when either is missing or there is no hidden layer."""
    try:
        kept, total = ([int(n) for n in a.split("-")][1:] for a in (neurons, original))
    except (AttributeError, ValueError):
        return None
    return 100.0 * sum(kept) / sum(total) if total and len(kept) == len(total) else None
