"""The search space of a keras-tuner search: ranges over the hyperparameters of a run.

A range is written `name=kind:arguments` (`--search` takes them comma-separated):

    strength=log:0.01:1            a float drawn log-uniformly from [0.01, 1]
    prune_to=float:2:20:2          a float from [2, 20] in steps of 2 (the step is optional)
    prune_start=int:0:10000:2500   an integer, with an optional step
    prior=choice:horseshoe:log_uniform
    prior_args.global_scale=log:1e-6:1e-3   one argument inside --prior_args

`name` is any flag of the run searched: of the sparse-training runner (data, model, training,
sparsity, or `prior_args.<key>`), or of the lottery runner (data, model, training, pruning: e.g.
`rewind_iteration=int:0:2000:500`). A search must include at least one sparsity hyperparameter
(a field of the sparsity or pruning section): that is what this tool is for. Values are cast to
the field's type; a numeric range on a text field (--prune_threshold) gives the number as text.
`default_space` gives each family's own sparsity hyperparameters.
"""
import dataclasses
import math

from tflth.hparams import fields
from tflth.lottery.hparams import LotteryHparams
from tflth.trainer.hparams import TrainerHparams

KINDS = ("float", "log", "int", "choice")
PRIOR_ARGS = "prior_args."
# The runs a search can vary: {hparams class: (the runner, flags to suggest, its sparsity section)}.
RUNS = {TrainerHparams: ("the sparse-training runner", "strength, prune_to, lr", "sparsity"),
        LotteryHparams: ("the lottery runner", "fraction, rewind_iteration, lr", "pruning")}


@dataclasses.dataclass(frozen=True)
class Range:
    """One searched hyperparameter: `name`, `kind` (one of KINDS) and its `values`: (low, high)
    or (low, high, step) for float/log/int, the choices for choice."""
    name: str
    kind: str
    values: tuple

    def __str__(self):
        return f"{self.name}={self.kind}:" + ":".join(map(str, self.values))

    def declare(self, hp):
        """Registers the range with a keras-tuner `HyperParameters` and returns its value there."""
        if self.kind == "choice":
            return hp.Choice(self.name, list(self.values))
        low, high, *step = self.values
        if self.kind == "int":
            return hp.Int(self.name, low, high, step=step[0] if step else None)
        return hp.Float(self.name, low, high, step=step[0] if step else None,
                        sampling="log" if self.kind == "log" else "linear")

    def corners(self):
        """The values that bound the range (each choice, both ends), checked before searching."""
        return self.values if self.kind == "choice" else self.values[:2]


def _owners(cls):
    """{flag name: section field} over every section of a run of `cls` (TrainerHparams, LotteryHparams)."""
    return {f.name: section.name for section in dataclasses.fields(cls) for f in fields(section.type)}


def _has_prior_args(name, cls):
    return cls is TrainerHparams and name.startswith(PRIOR_ARGS) and len(name) > len(PRIOR_ARGS)


def _field_type(name, cls):
    if _has_prior_args(name, cls):
        return "float"
    section = next(s for s in dataclasses.fields(cls) if s.name == _owners(cls)[name])
    kind = next(f.type for f in fields(section.type) if f.name == name)
    return kind if isinstance(kind, str) else kind.__name__


def _cast(text, kind, where):
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        value = {"int": int, "float": float, "str": str}[kind](text)
        if kind == "float" and not math.isfinite(value):
            raise ValueError
        return value
    except ValueError:
        raise ValueError(f"--search={where}: {text!r} is not a{'n' if kind == 'int' else ' finite'} {kind}") from None


def parse(text, cls=TrainerHparams):
    """A Range over a run of `cls` from `name=kind:arguments`; ValueError naming --search for
    anything wrong."""
    name, _, spec = (part.strip() for part in text.partition("="))
    kind, *args = spec.split(":") if spec else ("",)
    if name not in _owners(cls) and not _has_prior_args(name, cls):
        runner, examples, _ = RUNS[cls]
        raise ValueError(f"--search={text}: {name!r} is not a hyperparameter of the run; give a flag of {runner} "
                         f"(e.g. {examples})" + (" or prior_args.<key>" if cls is TrainerHparams else ""))
    if name in ("dataset", "validation_size"):
        raise ValueError(f"--search={text}: a search reads its data once; set --{name} as a flag")
    if name in ("prior_args", "per_layer", "prune_overrides", "exclude", "lr_drops"):
        raise ValueError(f"--search={text}: {name} is a list of settings; search one of its entries "
                         "(prior_args.<key>) or set it as a flag")
    if kind not in KINDS:
        raise ValueError(f"--search={text}: kind {kind!r} is unknown; allowed: {', '.join(KINDS)} "
                         "(e.g. strength=log:0.01:1)")
    field_type = _field_type(name, cls)
    if kind == "choice":
        if not args or any(not a for a in args):
            raise ValueError(f"--search={text}: choice needs values, e.g. prior=choice:horseshoe:log_uniform")
        values = tuple(_cast(a, field_type, text) for a in args)
        if len(set(values)) != len(values):
            raise ValueError(f"--search={text}: a choice is repeated")
        return Range(name, kind, values)
    if field_type == "bool" or (field_type == "str" and name != "prune_threshold"):
        raise ValueError(f"--search={text}: {name} takes {field_type} values; use choice:...")
    if len(args) not in (2, 3):
        raise ValueError(f"--search={text}: {kind} needs low:high or low:high:step")
    number = int if kind == "int" else float
    if kind == "int" and field_type == "float":
        raise ValueError(f"--search={text}: {name} is a float; use float:... (with a step for a grid)")
    if kind != "int" and field_type == "int":
        raise ValueError(f"--search={text}: {name} is an integer; use int:low:high[:step]")
    values = tuple(_cast(a, number.__name__, text) for a in args)
    if not values[0] < values[1]:
        raise ValueError(f"--search={text}: low must be below high")
    if kind == "log" and values[0] <= 0:
        raise ValueError(f"--search={text}: log needs low > 0")
    if len(values) == 3 and not 0 < values[2] <= values[1] - values[0]:
        raise ValueError(f"--search={text}: the step must be in (0, high - low]")
    if kind == "log" and len(values) == 3:
        raise ValueError(f"--search={text}: log takes no step (low:high)")
    return Range(name, kind, values)


def parse_space(texts, cls=TrainerHparams):
    """The Ranges of several `--search` values over a run of `cls`; ValueError for a repeated
    name, an empty space or one without a sparsity hyperparameter."""
    space = [parse(t, cls) for t in texts]
    names = [r.name for r in space]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"--search: {', '.join(repeated)} given more than once")
    check_sparsity(space, cls)
    return space


# Fields of the sparsity section that change how a model is evaluated or trained, not how sparse it gets.
NOT_SPARSITY = ("mc_samples", "estimator")


def check_sparsity(space, cls=TrainerHparams):
    section = RUNS[cls][2]
    sparsity = {name for name, owner in _owners(cls).items()
                if owner == section and name not in NOT_SPARSITY}
    if not any(r.name in sparsity or _has_prior_args(r.name, cls) for r in space):
        given = ", ".join(r.name for r in space) or "nothing"
        example = ("strength=log:0.01:1, prune_to=float:2:20, prior_args.global_scale=log:1e-6:1e-3"
                   if cls is TrainerHparams else "fraction=float:0.1:0.5, rewind_iteration=int:0:2000:500")
        raise ValueError(f"--search: the space ({given}) has no sparsity hyperparameter; search at least one of "
                         f"the {section} flags (e.g. {example})")


def default_space(base):
    """The sparsity hyperparameters of `base`'s family as ranges (what a search with no --search
    varies): the prior's scale or inclusion, the L0 or MAP penalty's strength (and L0's initial
    drop rate), the pruning target and start; for a lottery run the per-level fraction and the
    rewinding iteration. ValueError if the family has none."""
    t = base.training.iterations
    if isinstance(base, LotteryHparams):
        texts = ["fraction=float:0.1:0.5", f"rewind_iteration=int:0:{max(1, t // 10)}"]
        return parse_space(texts, LotteryHparams)
    s, texts = base.sparsity, []
    texts += {"normal": ["prior_args.scale=log:0.01:1"], "horseshoe": ["prior_args.global_scale=log:1e-7:1e-3"],
              "spike_and_slab": ["prior_args.inclusion=log:0.01:0.9"]}.get(s.prior, [])
    if s.penalty == "l0":
        texts += ["strength=log:0.01:10", "droprate_init=float:0.2:0.7"]
    elif s.penalty != "none":
        texts += ["strength=log:0.01:10"]
    if s.prune_to:
        texts += ["prune_to=log:1:20"] + ([f"prune_start=int:0:{t // 2}"] if s.prune_schedule == "gradual" else [])
    elif s.prune_score == "log_alpha" and s.prune_threshold:
        texts += ["prune_threshold=float:-5:-1"]
    if not texts:
        raise ValueError("--search: this run's family has no default ranges (no penalty, prior or pruning target); "
                         "give --search")
    return parse_space(texts)


def _prior_args(text):
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip()
    return out


def apply(base, values):
    """`base` (TrainerHparams or LotteryHparams) with the searched `values` ({name: value}) put in;
    ValueError (the hparams' own one-line error) if they make an invalid run."""
    cls = type(base)
    owners, changes = _owners(cls), {}
    prior_args = _prior_args(base.sparsity.prior_args) if cls is TrainerHparams else {}
    for name, value in values.items():
        if _has_prior_args(name, cls):
            prior_args[name[len(PRIOR_ARGS):]] = repr(float(value))  # repr: the exact value, read back by float()
        elif _field_type(name, cls) == "str" and not isinstance(value, str):
            changes.setdefault(owners[name], {})[name] = repr(float(value))  # --prune_threshold
        else:
            changes.setdefault(owners[name], {})[name] = value
    if any(_has_prior_args(n, cls) for n in values):
        changes.setdefault("sparsity", {})["prior_args"] = ",".join(f"{k}={v}" for k, v in prior_args.items())
    return dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **kw)
                                        for section, kw in changes.items()})


def check(space, base, run_check=None):
    """Every corner of every range, the others at their first value, makes a valid run of
    `base` (its hparams, and `run_check(hparams)` if given: what only a built model or the
    schedule can tell): a typo fails here, not trials later."""
    first = {r.name: r.corners()[0] for r in space}
    def valid(values, where):
        try:
            hparams = apply(base, values)
            if run_check:
                run_check(hparams)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    valid(first, "--search: with every range at its first value" if space else "the base run")
    for r in space:
        for value in r.corners()[1:]:
            valid({**first, r.name: value}, f"--search={r}: at {r.name}={value}")
