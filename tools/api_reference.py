"""The API reference: HTML pages of tflth's public names, made from their docstrings by pdoc.

    python tools/api_reference.py [--out DIR]      (default: api/, which git ignores)

A module's public names are those its __all__ lists. A listed name without a docstring of its
own (a class does not inherit its base's here), a module without __all__, a module of tflth
with __all__ that MODULES leaves out, or a warning of pdoc's stops the build with one line each
and exit status 1; tests/test_api_reference.py runs it.
"""
import argparse
import importlib
import pathlib
import pkgutil
import re
import sys
import types
import warnings

MODULES = ("tflth", "tflth.layers", "tflth.pruning", "tflth.models", "tflth.engine", "tflth.lottery", "tflth.trainer",
           "tflth.data", "tflth.bayes", "tflth.l0", "tflth.priors", "tflth.regularizers", "tflth.distribute",
           "tflth.export", "tflth.tuning", "tflth.ablation")


def undocumented():
    """["module.name: why"] for each public name (and module) the reference would show bare."""
    import pdoc.doc
    problems = []
    for name in MODULES:
        module = importlib.import_module(name)
        doc = pdoc.doc.Module(module)
        if not doc.docstring:
            problems.append(f"{name}: no module docstring")
        if not hasattr(module, "__all__"):
            problems.append(f"{name}: no __all__ (the public names)")
            continue
        for public in module.__all__:
            member = doc.get(public)
            if isinstance(getattr(module, public, None), types.ModuleType):
                continue  # a submodule: documented as a module where MODULES lists it
            obj = getattr(module, public, None)
            own = obj.__dict__.get("__doc__") if isinstance(obj, type) else True  # pdoc shows a base's
            if member is None:
                problems.append(f"{name}.{public}: listed in __all__ but not found")
            elif not member.docstring.strip() or not own:
                problems.append(f"{name}.{public}: no docstring")
    import tflth
    for info in pkgutil.iter_modules(tflth.__path__, "tflth."):
        if info.name not in MODULES and hasattr(importlib.import_module(info.name), "__all__"):
            problems.append(f"{info.name}: has __all__ (public names) but is not in MODULES")
    return problems


def build(out):
    """Writes the HTML reference to `out`; the problems found (a pdoc warning included)."""
    import pdoc
    problems = undocumented()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # pdoc walks the submodules tflth.__all__ lists (and theirs); the others of MODULES are
        # named, and the negated pattern keeps those of MODULES alone
        listed = importlib.import_module("tflth").__all__
        named = [m for m in MODULES[1:] if m.split(".")[1] not in listed]
        only = "!(?!(" + "|".join(re.escape(m) for m in MODULES) + ")$).*"
        pdoc.pdoc("tflth", *named, only, output_directory=pathlib.Path(out))
    return problems + [f"pdoc: {w.message}" for w in caught if "pdoc" in (w.filename or "") or
                       w.category.__module__.startswith("pdoc")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="api", help="the folder to write (default: api)")
    args = parser.parse_args(argv)
    problems = build(args.out)
    for line in problems:
        print(f"api reference: {line}", file=sys.stderr)
    if not problems:
        print(f"api reference written to {args.out}/index.html")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
