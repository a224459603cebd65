"""The `tflth` command: one entry for every command line tflth has (installed by pip as `tflth`;
`python -m tflth` in a clone; each script in recipes/ runs one of its commands).

    tflth lottery --flagfile=recipes/flags/mnist_lth_quick.cfg
    tflth summarize runs/lottery_<hash>
    tflth <command> --help

Each command is its module's `main` (listed in COMMANDS), so a command's flags, checks and exit
statuses are its module's: bad input prints one line and exits with status 2 (`tflth.cli`).
"""
import importlib
import os
import shutil
import sys

# name: (module whose main() runs it, keyword arguments of that main, what it does)
COMMANDS = {
    "lottery": ("tflth.lottery.cli", {}, "lottery tickets: iterative magnitude pruning, rewinding, controls"),
    "train": ("tflth.trainer.cli", {}, "sparse training with a penalty or L0 gates (--penalty, default l0)"),
    "prune": ("tflth.trainer.cli", {"defaults": {"penalty": "none"}},
              "the same runner without a penalty: pruning while training (--prune_score, --prune_to)"),
    "bayes": ("tflth.trainer.cli", {"defaults": {"penalty": "none", "strength": "1", "prior": "normal"}},
              "the same runner with Bayesian layers (--prior; default normal, the ELBO)"),
    "ablation": ("tflth.ablation.cli", {}, "several methods x keep levels x seeds, one table"),
    "tune": ("tflth.tuning.cli", {}, "keras-tuner search over sparse training's flags (--search)"),
    "tune_lottery": ("tflth.tuning.cli", {"lottery": True}, "keras-tuner search over the lottery runner's flags"),
    "export": ("tflth.export.cli", {}, "a run's model as a smaller SavedModel (sparse or compacted)"),
    "summarize": ("tflth.summary.cli", {}, "tables and figures of run folders (lottery or sparse training)"),
    "flags": ("tflth.flagfiles", {}, "the flagfiles tflth ships, by name (--flagfile=NAME)"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, _, about) in COMMANDS.items()]
    return "usage: tflth COMMAND [FLAGS]   (tflth COMMAND --help: its flags)\n\ncommands:\n" + "\n".join(lines)


def invocation():
    """How this environment runs the `tflth` command: `tflth` where that is on the PATH, else the
    script pip installed beside this Python (a virtual environment not activated), else
    `python -m tflth`; for the hints a command prints."""
    script = os.path.join(os.path.dirname(sys.executable), "tflth")
    found = shutil.which("tflth")
    if found and os.path.exists(script) and os.path.samefile(found, script):
        return "tflth"
    if os.path.exists(script):
        relative = os.path.relpath(script)
        return script if relative.startswith("..") else relative
    return f"{sys.executable} -m tflth"


def main(argv=None):
    """Runs `tflth COMMAND [FLAGS]` (`argv`: default sys.argv[1:]); exits with the command's status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; one of: {', '.join(COMMANDS)} (tflth --help)", file=sys.stderr)
        sys.exit(2)
    module, kwargs, _ = COMMANDS[name]
    try:
        command = importlib.import_module(module)
    except ImportError as e:  # a dependency missing or outside the checked versions (tflth.internals)
        print(f"error: tflth {name}: {str(e).splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"tflth {name}", *rest]  # absl and argparse read the flags from sys.argv
    sys.exit(command.main(**kwargs))
