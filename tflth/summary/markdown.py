"""The summaries as markdown: a lottery run's table per level with its controls paired against
the ticket, the sparse-training table per variant, and the comparison with IMP."""
from .imp_comparison import MATCH, compare_lottery
from .lottery import branches_of, early_stop_acc
from .plots import style
from .read import branch_key
from .sparse import flag, seed_list


def _num(x, digits, sign=""):
    return f"{round(x, digits) + 0.0:{sign}.{digits}f}"  # + 0.0: no "-0.00"


def _fmt(stats, digits, n_level, ci=False):
    """'mean ± std', with ' [low, high]' (the 95% interval) if `ci` and known, ' (n=k)' for fewer seeds."""
    if not stats:
        return "—"
    std = "" if stats["std"] is None else f" ± {stats['std']:.{digits}f}"
    interval = stats.get("ci") if ci else None  # a summary.json older than the intervals has none
    std += f" [{_num(interval[0], digits)}, {_num(interval[1], digits)}]" if interval else ""
    return f"{stats['mean']:.{digits}f}{std}" + (f" (n={stats['n']})" if stats["n"] < n_level else "")


def _paired_cell(p):
    """'+1.20 [+0.80, +1.60], wins 0/5', with ' (k tied)' where seeds tie and ', n.s.' where the
    interval holds 0; '—' for none."""
    if p is None:
        return "—"
    text = (f"{_num(p['diff'], 2, '+')} [{_num(p['ci'][0], 2, '+')}, {_num(p['ci'][1], 2, '+')}], "
            f"wins {p['wins']}/{p['n']}" + (f" ({p['ties']} tied)" if p.get("ties") else ""))
    return text if p["significant"] else text + ", n.s."


def to_markdown(rows, missing_lines=(), title=None):
    """The summary as markdown: one table row per level, then the dense comparison and gaps."""
    branches = branches_of(rows)
    head = ["Level", "Weights %", "Ticket ES iter", *(f"{style(b)[0].capitalize()} ES acc %" for b in branches),
            "Ticket Δ vs dense (pp)", "Seeds"]
    lines = ([f"# {title}", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in rows:
        n, delta = len(row["seeds"]), row["ticket_vs_dense"]
        cells = [str(row["level"]), f"{row['weights_remaining']:.1f}",
                 _fmt(row["branches"].get("main", {}).get("early_stop_step"), 0, n, ci=True),
                 *(_fmt(row["branches"].get(b, {}).get("early_stop_test_acc"), 2, n, ci=True) for b in branches),
                 "—" if delta is None else f"{round(delta, 2) + 0.0:+.2f}", str(n)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "ES = early stop (minimum validation loss); test accuracy at that iteration. "
              "Mean ± sample std [95% t interval of the mean] over seeds; (n=k) when fewer seeds than the level has."]
    dense = early_stop_acc(rows[0]) if rows[0]["level"] == 0 else None
    if dense is not None:
        ok = [r for r in rows[1:] if early_stop_acc(r) is not None and early_stop_acc(r) >= dense]
        best = min(ok, key=lambda r: r["weights_remaining"]) if ok else None
        lines.append(f"Dense baseline (level 0): {dense:.2f}% test accuracy at early stop; " + (
            f"the ticket matches or beats it down to {best['weights_remaining']:.1f}% weights "
            f"remaining (level {best['level']})." if best else "no pruned ticket reaches it."))
    lines += paired_markdown(rows)
    if missing_lines:
        lines += ["", "Missing (partial run):"] + [f"- {m}" for m in missing_lines]
    return "\n".join(lines) + "\n"


_PAIRED_NOTE = ("with a 95% interval that carries the seed-to-seed spread and the test set's sampling error "
                "(tflth/stats.py); wins: the seeds on which {who} errs less (tied: "
                "as many errors). n.s.: the interval holds 0, the two are not distinguishable. —: fewer than 2 seeds "
                "with per-example test results in both (metrics files older than them have none).")


def paired_markdown(rows):
    """Lines of the section 'Controls against the winning ticket' (rows with 'paired_vs_ticket',
    `pair_controls`); none when no level has a control branch."""
    controls = sorted({b for row in rows for b in row.get("paired_vs_ticket") or {}}, key=branch_key)
    if not controls:
        return []
    head = [("Level", "---:"), ("Weights %", "---:"),
            *((f"{style(b)[0].capitalize()}: Δ test error (points)", "---:") for b in controls)]
    lines = ["", "## Controls against the winning ticket", ""] + _table_head(head)
    for row in (r for r in rows if r.get("paired_vs_ticket")):
        cells = [str(row["level"]), f"{row['weights_remaining']:.1f}",
                 *(_paired_cell(row["paired_vs_ticket"].get(b)) for b in controls)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "Test error at the end of training of the control minus the winning ticket's at the same "
                    "level, on the same seeds and test examples (positive: the ticket errs less), "
                    + _PAIRED_NOTE.format(who="the control")]


def sparse_markdown(variants, title=None, run_dirs=(), pending=(), missing_lines=(), lottery=None, baseline=None):
    """The summary as markdown: one table row per variant (run folder), its columns `_sparse_columns`;
    then, given `lottery` (`read_lottery`), the comparison with iterative magnitude pruning."""
    columns = _sparse_columns(variants, baseline)
    lines = ([f"# {title}", ""] if title else []) + _table_head([head for head, _ in columns])
    lines += ["| " + " | ".join(cell(v) for _, cell in columns) + " |" for v in variants]
    lines += ["", *_sparse_notes(variants), *_extra_notes(variants, baseline)]
    if lottery:
        lines += ["", *lottery_markdown(compare_lottery(variants, lottery), lottery)]
    lines += ["", "Run folders: " + ", ".join(f"`{d}`" for d in run_dirs)]
    if pending:
        lines += ["", "No finished seed yet (not in the table):"] + [f"- `{d}`" for d in pending]
    if missing_lines:
        lines += ["", "Missing (partial runs):"] + [f"- {m}" for m in missing_lines]
    return "\n".join(lines) + "\n"


def _sparse_columns(variants, baseline):
    """[((title, alignment), cell(variant))]: the first column is 'Method' when some variant is
    Bayesian or pruned while training ('Penalty' otherwise, as before); calibration columns only
    when some variant has them, pruned columns only when some seed was pruned to a matched %, the
    paired difference only given `baseline` (the folder of --baseline), the training cost only
    when some variant has it, an 'Other settings' column only when folders differ in more than the
    settings with a column."""
    new_methods = any(v["prior"] != "none" or v["prune_score"] for v in variants)
    originals = {v["architecture"]["original"] for v in variants}
    common = next(iter(originals)) if len(originals) == 1 else None
    columns = [(("Method" if new_methods else "Penalty", "---"), lambda v: v["method"]),
               (("Strength", "---:"), _strength_cell),
               (("Seeds", "---"), lambda v: f"{len(v['seeds'])} ({seed_list(v['seeds'])})"),
               _stats_column("Weights kept %", ("weights_kept",), 2),
               ((f"Architecture (of {common})" if common else "Architecture", "---"),
                lambda v: _architecture_cell(v["architecture"]["neurons"],
                                             None if common else v["architecture"]["original"]))]
    if any(v.get("hidden_kept") for v in variants):
        columns.append(_stats_column("Hidden units kept %", ("hidden_kept",), 1))
    columns += [_stats_column("Test error %", ("final_test_error",), 2, ci=True),
                _stats_column("ES test error %", ("early_stop_test_error",), 2, ci=True)]
    calibrated = [v["calibration"] for v in variants if v["calibration"]]
    for mode in ("mean", "mc") if any(c["mc"] for c in calibrated) else ("mean",) if calibrated else ():
        prefix = "MC " if mode == "mc" else ""
        columns += [_stats_column(f"{prefix}NLL", ("calibration", mode, "nll"), 3),
                    _stats_column(f"{prefix}ECE %", ("calibration", mode, "ece"), 2)]
    if any(v["pruned"] for v in variants):
        columns += [_stats_column("Pruned: weights kept %", ("pruned", "weights_kept"), 2),
                    _stats_column("Pruned: test error %", ("pruned", "test_error"), 2, ci=True)]
    columns += _extra_columns(variants, baseline)
    if any(v["settings"] for v in variants):
        columns.append((("Other settings", "---"), _settings_cell))
    return columns


def _stats_column(title, keys, digits, ci=False):
    """A column of statistics over seeds, `_fmt` of the variant's v[keys[0]][keys[1]]... ('—' where absent)."""
    def cell(v):
        stats = v
        for key in keys:
            stats = (stats or {}).get(key)
        return _fmt(stats, digits, len(v["seeds"]), ci)
    return (title, "---:"), cell


def _strength_cell(v):
    bayesian_or_none = v["prior"] != "none" or v["penalty"] == "none"
    return "—" if bayesian_or_none or v["strength"] is None else flag(float(v["strength"]))


def _settings_cell(v):
    return ", ".join(f"--{k}={flag(value)}" for k, value in v["settings"].items()) or "—"


def _sparse_notes(variants):
    """What the table's columns measure."""
    calibrated = [v["calibration"] for v in variants if v["calibration"]]
    mc = [c["mc"] for c in calibrated if c["mc"]]
    masks = " and the masks of pruning while training" if any(v["prune_score"] for v in variants) else ""
    lines = ["Test error = 100 × (1 − test accuracy) at the end of training; ES = early stop (minimum "
             f"validation loss). Weights kept: % of weights non-zero after the gates{masks}. Mean ± sample std "
             "over seeds, and for test errors [95% t interval of the mean]; (n=k) when fewer seeds than the row has."]
    if calibrated:
        samples = sorted({n for m in mc for n in m["samples"]}, key=str)
        lines.append("NLL (nats) and ECE (expected calibration error, 15 equal-width confidence bins) on the test "
                     "set, of the Bayesian network's mean mode (posterior means)" + (
                         f"; MC: of its predictive distribution, the average over {' or '.join(map(str, samples))} "
                         "weight samples (--mc_samples)" if mc else "") + ". —: not measured (a deterministic network"
                     + (", or --mc_samples=0" if mc else "") + ").")
    if any(v["pruned"] for v in variants):
        lines.append("Pruned: the trained model pruned by weight magnitude (global) to a matched % and tested again.")
    return lines


def _extra_columns(variants, baseline):
    """[((title, alignment), cell(variant))] of the optional columns: the paired difference against
    the folder `baseline`, and the training cost where some variant recorded it."""
    columns = []
    if baseline:
        columns.append((("Δ test error vs baseline (points)", "---:"),
                        lambda v: "baseline" if v["run_dir"] == baseline else _paired_cell(v["paired"])))
    if any(v["cost"] for v in variants):
        columns.append((("CPU min · training FLOPs (sparse / dense)", "---:"), lambda v: _cost_cell(v["cost"])))
    return columns


def _extra_notes(variants, baseline):
    notes = []
    if baseline:
        label = next(v["label"] for v in variants if v["run_dir"] == baseline)
        notes.append(f"Δ test error: the variant's test error at the end of training minus the baseline's ({label}, "
                     f"`{baseline}`), on the same seeds and test examples (negative: the variant errs less), "
                     + _PAIRED_NOTE.format(who="the variant"))
    if any(v["cost"] for v in variants):
        notes.append("Training cost: mean CPU minutes per seed, and training FLOPs counting only the weights the "
                     "masks keep / as executed by dense kernels (tflth/pruning/flops.py: 3 passes per step); —: "
                     "not recorded (metrics files older than them).")
    return notes


def _cost_cell(cost):
    if not cost:
        return "—"
    cpu = "—" if cost["cpu_minutes"] is None else f"{cost['cpu_minutes']:.1f}"
    return f"{cpu} · {_sci(cost['flops_sparse'])} / {_sci(cost['flops_dense'])}"


def _sci(x):
    """4.8e12 for 4.79e12 ('—' for None)."""
    return "—" if x is None else f"{x:.1e}".replace("e+", "e").replace("e0", "e")


def _architecture_cell(neurons, original=None, limit=3):
    distinct = list(dict.fromkeys(n for n in neurons if n))
    if not distinct:
        return "—"
    cell = ", ".join(distinct) if len(distinct) <= limit else f"{distinct[0]}, … ({len(distinct)} distinct)"
    return cell + (f" of {original}" if original else "")


def _iterations(n):
    return "—" if n is None else f"{n:,}"


def lottery_markdown(comparison, lottery):
    """Lines of the section 'Against iterative magnitude pruning' (see compare_lottery)."""
    head = [("Method", "---"), ("Weights kept %", "---:"), ("Test error %", "---:"), ("Iterations", "---:"),
            ("IMP level", "---:"), ("IMP weights %", "---:"), ("IMP test error %", "---:"),
            ("IMP iterations", "---:"), ("Match", "---")]
    lines = ["## Against iterative magnitude pruning", ""] + _table_head(head)
    for c in comparison:
        n, level = (c["weights_kept"] or {}).get("n", 0), c["level"]
        imp = ["—"] * 4 if level is None else [
            str(level["level"]), f"{level['weights_remaining']:.2f}",
            _fmt(level["final_test_error"], 2, (level["final_test_error"] or {}).get("n", 0)),
            _iterations(level["iterations"])]
        match = "not reached" if c["match"] == "not reached" else f"{round(c['gap'], 2) + 0.0:+.0%}" + (
            " ⚠" if c["match"] == "far" else "")
        lines.append("| " + " | ".join([c["label"], _fmt(c["weights_kept"], 2, n), _fmt(c["test_error"], 2, n),
                                        _iterations(c["iterations"]), *imp, match]) + " |")
    sparsest = min(lottery["levels"], key=lambda lv: lv["weights_remaining"], default=None)
    per_level = lottery["iterations_per_level"]
    lines += ["", f"IMP: iterative magnitude pruning with rewinding, the lottery runner (`{lottery['source']}`); "
              f"level L trains L + 1 times for {per_level:,} iterations ("
              + ("its hparams.json" if lottery["iterations_from"] == "hparams.json" else
                 "--lottery_iterations, default 50,000: the lottery run's hparams.json was not found")
              + "), so (L + 1) × that many iterations spent; its test error: the winning ticket's at the end of "
              "training. Iterations: the variant's --iterations (one training run). Weights kept and test error "
              "of the variant: after training (before any --keep_percent)."]
    lines.append(f"Match: the IMP level nearest in weights kept, its weights relative to the variant's; ⚠ more "
                 f"than {MATCH:.0%} apart" + ("" if sparsest is None else
                                              f"; not reached: sparser than the lottery run's sparsest level "
                                              f"({sparsest['weights_remaining']:.2f}%, level {sparsest['level']}) "
                                              f"by more than {MATCH:.0%}") + ".")
    return lines


def _table_head(head):
    """The header and alignment lines of a markdown table of (title, alignment) columns."""
    return ["| " + " | ".join(h for h, _ in head) + " |", "|" + "|".join(a for _, a in head) + "|"]
