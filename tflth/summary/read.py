"""Run folders read back: the records of their metrics.json files (`tflth.schema` names what a
runner writes), their hyperparameters and their kind. Whatever a file holds that the summary
cannot use is a SummaryError naming the file."""
import glob
import json
import math
import os

from tflth import io, schema


class SummaryError(ValueError):
    """Bad input: the message is the one line printed before exiting with status 2."""


def number(value):
    """A finite int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_json(path):
    """A metrics.json (or a summary.json) as read; SummaryError naming it where it cannot be."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SummaryError(f"{path}: corrupt metrics.json ({type(e).__name__}: {e})") from None


def _read_lottery_metrics(path, seed, level, branch):
    data = load_json(path)
    rows = (data.get("rows") or []) if isinstance(data, dict) else None
    if (rows is None or not number(data.get("weights_remaining"))
            or any(data.get(k) is not None and not number(data[k]) for k in schema.OPTIONAL)
            or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows)):
        raise SummaryError(f"{path}: corrupt metrics.json (expected an object with a number "
                           f"'weights_remaining', numbers or null for {', '.join(schema.OPTIONAL)}, 'rows' a list)")
    return {"seed": seed, "level": level, "branch": branch, "path": path, "rows": rows,
            "weights_remaining": float(data["weights_remaining"]), **{k: data.get(k) for k in schema.OPTIONAL},
            "correct": _correct(data.get("test_correct"), path)}


def _correct(packed, path):
    """The per-example test correctness `tflth.io.pack_bits` stored ({"n", "bits"}), as booleans;
    None for metrics files older than it."""
    if packed is None:
        return None
    try:
        n = packed["n"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n={n!r}")
        return io.unpack_bits(packed)
    except (KeyError, TypeError, ValueError) as e:  # binascii.Error is a ValueError
        raise SummaryError(f"{path}: corrupt metrics.json ('test_correct' is not the {{\"n\", \"bits\"}} of "
                           f"tflth.io.pack_bits: {type(e).__name__}: {e})") from None


def collect(run_dir):
    """One record per existing metrics.json (seed, level, branch from its path), sorted by
    level, branch, seed. Raises SummaryError when there is nothing to read or a file is corrupt."""
    expected = schema.lottery_metrics("<seed>", "<L>", "<branch>")
    if not os.path.isdir(run_dir):
        raise SummaryError(f"{run_dir}: not a directory (expected a run folder with {expected})")
    records = []
    for path in glob.glob(os.path.join(glob.escape(run_dir), schema.lottery_metrics())):
        replicate, level, branch = path.split(os.sep)[-4:-1]
        seed, level = schema.number_of(schema.REPLICATE, replicate), schema.number_of(schema.LEVEL, level)
        if seed is not None and level is not None and os.path.isfile(path):
            records.append(_read_lottery_metrics(path, seed, level, branch))
    if not records:
        raise SummaryError(f"{run_dir}: no metrics.json found (expected {expected})")
    return sorted(records, key=lambda r: (r["level"], branch_key(r["branch"]), r["seed"]))


def branch_key(branch):
    """The branches in `tflth.schema.BRANCHES`' order, any other after them by name."""
    known = schema.BRANCHES
    return (known.index(branch) if branch in known else len(known), branch)


def run_kind(run_dir):
    """schema.LOTTERY, schema.SPARSE or None (not recognisable: absent, empty, something else)."""
    name = os.path.basename(os.path.normpath(run_dir))
    here = glob.escape(run_dir)
    levels = os.path.join(here, schema.REPLICATE.format("*"), schema.LEVEL.format("*"))
    if glob.glob(levels) or name.startswith(f"{schema.LOTTERY}_"):
        return schema.LOTTERY
    if glob.glob(os.path.join(here, schema.sparse_metrics())) or name.startswith(f"{schema.SPARSE}_"):
        return schema.SPARSE
    hp = read_hparams(run_dir) or {}
    return next((kind for kind in (schema.SPARSE, schema.LOTTERY) if schema.SECTION[kind] in hp), None)


def read_hparams(run_dir):
    """hparams.json as a dict (informational; None when absent or unreadable)."""
    try:
        with open(os.path.join(run_dir, schema.HPARAMS)) as f:
            hp = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return hp if isinstance(hp, dict) else None


def read_title(run_dir):
    """'<model> on <dataset>' from hparams.json (informational; None when absent or unreadable)."""
    hp = read_hparams(run_dir) or {}
    try:
        names = [(hp.get(k) or {}).get(k) or (hp.get(k) or {}).get("name") for k in ("model", "dataset")]
    except AttributeError:
        return None
    return " on ".join(str(x) for x in names if x) or None


def section(hp, name):
    """hparams.json's section `name` ({} when absent or not an object)."""
    found = (hp or {}).get(name)
    return found if isinstance(found, dict) else {}


def _number_or_null(value):
    return value is None or number(value)


def _read_sparse_metrics(path, seed):
    data = load_json(path)
    ok = isinstance(data, dict) and number(data.get("weights_remaining")) and all(
        _number_or_null(data.get(k)) for k in schema.OPTIONAL) and isinstance(data.get("rows", []), list)
    arch, pruned = (data.get("architecture"), data.get("pruned")) if ok else (None, None)
    ok = ok and (arch is None or isinstance(arch, dict) and all(
        isinstance(arch.get(k), (str, type(None))) for k in ("neurons", "original")))
    ok = ok and (pruned is None or isinstance(pruned, dict) and number(pruned.get("weights_remaining"))
                 and _number_or_null(pruned.get("test_acc")) and _number_or_null(pruned.get("keep_percent")))
    ok = ok and isinstance(data.get("penalty"), (str, type(None))) and _number_or_null(data.get("strength"))
    ok = ok and all(isinstance(data.get(k), (str, type(None))) for k in ("prior", "estimator", "prune_score"))
    calibration = data.get("calibration") if ok else None
    ok = ok and _calibration_ok(calibration)
    if not ok:
        raise SummaryError(f"{path}: corrupt metrics.json (expected an object with a number 'weights_remaining', "
                           f"numbers or null for {', '.join(schema.OPTIONAL)}, 'architecture' an object or null, "
                           "'pruned' null or an object with a number 'weights_remaining', 'calibration' null or "
                           "an object whose 'mean' and 'mc' hold numbers)")
    arch = arch or {}
    if pruned is not None:
        pruned = {"keep_percent": pruned.get("keep_percent"), "weights_remaining": float(pruned["weights_remaining"]),
                  "test_acc": pruned.get("test_acc"),
                  "neurons": (pruned.get("architecture") or {}).get("neurons")
                  if isinstance(pruned.get("architecture"), dict) else None}
    return {"seed": seed, "path": path, **{k: data.get(k) for k in (*schema.METHOD, *schema.OPTIONAL)},
            "calibration": calibration, "weights_remaining": float(data["weights_remaining"]),
            "neurons": arch.get("neurons"), "original": arch.get("original"), "pruned": pruned,
            "correct": _correct(data.get("test_correct"), path)}


def _calibration_ok(calibration):
    """Null, or the runner's {"mean": {"error", "nll", "ece"}, "mc": {"samples", ...} (may be absent)} of numbers."""
    if calibration is None:
        return True
    modes = [calibration.get("mean"), calibration.get("mc") or {}] if isinstance(calibration, dict) else [None]
    return all(isinstance(m, dict) and all(_number_or_null(m.get(k)) for k in ("error", "nll", "ece", "samples"))
               for m in modes)


def collect_sparse(run_dir):
    """(records sorted by seed, unfinished seeds): one record per seed_<s>/metrics.json; a
    seed_<s> folder without one is a seed still running (or killed). Raises SummaryError for
    a corrupt file."""
    if not os.path.isdir(run_dir):
        raise SummaryError(f"{run_dir}: not a directory (expected a run folder with {schema.sparse_metrics('<s>')})")
    records, unfinished = [], []
    for folder in glob.glob(os.path.join(glob.escape(run_dir), schema.SEED.format("*"))):
        seed = schema.number_of(schema.SEED, os.path.basename(folder))
        if seed is None or not os.path.isdir(folder):
            continue
        path = os.path.join(folder, schema.METRICS)
        if os.path.isfile(path):
            records.append(_read_sparse_metrics(path, seed))
        else:
            unfinished.append(seed)
    return sorted(records, key=lambda r: r["seed"]), sorted(unfinished)
