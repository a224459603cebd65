"""Hyperparameters as frozen dataclasses that generate absl flags and name run folders.

Each field becomes one flag of the same name (so field names must be unique across
the sections of a run). The run folder is named by a hash of the fields that differ
from their defaults: adding a field with a default keeps old folders valid, renaming
one changes the hash (a test pins some hashes so that cannot happen silently).
"""
import dataclasses
import hashlib
import json
import math
import numbers


def fields(cls):
    return dataclasses.fields(cls)


def field(default, help_text):
    """A dataclass field whose help text becomes the flag's help."""
    return dataclasses.field(default=default, metadata={"help": help_text})


def fail(name, value, allowed):
    """The one-line error for a bad flag value: `--name=value: what is allowed`."""
    raise ValueError(f"--{name}={value!r}: {allowed}")


def check_numbers(hparams):
    """Refuses NaN and infinities in every float field: each section's __post_init__ calls it
    first, so that its range checks (some written `x <= 0`, which NaN passes) see numbers."""
    for f in fields(hparams):
        value = getattr(hparams, f.name)
        if isinstance(value, numbers.Real) and not math.isfinite(value):  # NumPy's floats too
            fail(f.name, value, "must be a finite number")


def one_of(name, value, allowed):
    if value not in allowed:
        fail(name, value, f"allowed: {', '.join(repr(a) if a == '' else str(a) for a in allowed)}")


def define_flags(cls, flag_values, exclude=()):
    """Defines one absl flag per field of dataclass `cls` (help text: field metadata["help"]),
    except the fields named in `exclude` (a command line that defines them its own way)."""
    from absl import flags
    for f in fields(cls):
        if f.name in exclude:
            continue
        help_text = f.metadata.get("help", f.name)
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        definer = {"int": flags.DEFINE_integer, "float": flags.DEFINE_float,
                   "bool": flags.DEFINE_bool, "str": flags.DEFINE_string}[kind]
        definer(f.name, f.default, help_text, flag_values=flag_values, module_name=cls.__name__)  # --help's sections


def from_flags(cls, flag_values):
    """Builds `cls` from parsed flags (its __post_init__ validates the values)."""
    return cls(**{f.name: flag_values[f.name].value for f in fields(cls)})


def non_default(hparams):
    """{field: value} of the fields that differ from their defaults."""
    return {f.name: getattr(hparams, f.name) for f in fields(hparams)
            if getattr(hparams, f.name) != f.default}


def to_flagfile(sections):
    """The flags that rebuild these hparams, one per line (for the run folder)."""
    lines = []
    for hparams in sections:
        for name, value in non_default(hparams).items():
            lines.append(f"--{name}={str(value).lower() if isinstance(value, bool) else value}")
    return "\n".join(lines) + "\n"


def digest(sections):
    """A short stable hash of the non-default fields of several hparams sections."""
    payload = {type(h).__name__: non_default(h) for h in sections}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.md5(text.encode()).hexdigest()[:10]


class Sections:
    """Mixin for a frozen dataclass whose fields are hparams sections (a run's hyperparameters):
    the sections in order (hashed into the run folder's name) and a JSON round trip."""

    @property
    def sections(self):
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def to_dict(self):
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d):
        return cls(**{f.name: f.type(**d[f.name]) for f in dataclasses.fields(cls)})
