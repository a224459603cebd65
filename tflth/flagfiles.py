"""The flagfiles tflth ships (tflth/flags/*.cfg; `recipes/flags` in a clone), usable by name:
`tflth lottery --flagfile=mnist_lth_quick` reads tflth/flags/mnist_lth_quick.cfg wherever tflth
is installed. `tflth flags` lists them. A --flagfile that names an existing file is that file.
Names are read on the command line; inside a flagfile, --flagfile takes a path (absl reads it).
"""
import os
import sys

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flags")


def names():
    return sorted(name[:-len(".cfg")] for name in os.listdir(FOLDER) if name.endswith(".cfg"))


def path(name):
    return os.path.join(FOLDER, f"{name}.cfg")


def heading(name):
    """(the command that runs the flagfile, what it runs): its first two comment lines say so,
    as `# tflth COMMAND --flagfile=NAME` and the first line of its description."""
    with open(path(name)) as f:
        first, second = f.readline(), f.readline()
    command = first.split()[2] if first.startswith("# tflth ") else ""
    return command, second.lstrip("#").strip().rstrip(",:;") if second.startswith("#") else ""


def _resolved(value):
    if os.path.isfile(value):
        return value
    name, shipped = (value[:-len(".cfg")] if value.endswith(".cfg") else value), names()
    if os.sep not in value and name in shipped:
        return path(name)
    if os.sep in value:
        base = os.path.basename(name)
        hint = f"; tflth ships {base}: --flagfile={base}" if base in shipped else " (tflth flags)"
        raise ValueError(f"--flagfile={value}: no such file{hint}")
    raise ValueError(f"--flagfile={value}: no such file, and not a flagfile tflth ships; those are: "
                     f"{', '.join(shipped)} (tflth flags)")


def resolve(argv):
    """`argv` with each --flagfile (`--flagfile=X` or `--flagfile X`) that names a shipped
    flagfile replaced by its path; ValueError (one line) for one that is neither a file nor a name."""
    out, args = [], iter(argv)
    for arg in args:
        if arg.startswith(("--flagfile=", "-flagfile=")):
            flag, value = arg.split("=", 1)
            arg = f"{flag}={_resolved(value)}"
        elif arg in ("--flagfile", "-flagfile"):
            out.append(arg)
            arg = _resolved(next(args, ""))
        out.append(arg)
    return out


def main():
    """`tflth flags`: the shipped flagfiles, one per line with what it runs."""
    if sys.argv[1:] in (["-h"], ["--help"]):
        print("usage: tflth flags   (lists the flagfiles tflth ships; use one with --flagfile=NAME)")
        return 0
    if sys.argv[1:]:
        print(f"error: tflth flags takes no arguments (got {' '.join(sys.argv[1:])})", file=sys.stderr)
        return 2
    width = max(map(len, names()))
    for name in names():
        command, about = heading(name)
        print(f"{name:<{width}}  tflth {command:<12}  {about}")
    print(f"\nuse one by name: tflth COMMAND --flagfile=NAME (the files: {FOLDER})")
    return 0
