"""What the recipes' command lines share: flags every runner takes, one-line errors, parsing.

Bad input (a missing flagfile, an unknown flag, a value out of range or not finite, data that
cannot be found) prints one line and exits with status 2 before any folder is made. A run that
cannot go on (`tflth.failures`: a damaged file, a diverged loss, a folder another process holds,
a full disk) prints one line and exits with status 1; SIGTERM and Ctrl-C stop it with one line
(exit 128 + the signal), its resumable state kept.
"""
import contextlib
import functools
import math
import signal
import sys

from absl import app, flags

from tflth import commands, determinism, distribute, flagfiles
from tflth.failures import RunFailure, disk_full, no_space


def define_common_flags(flag_values):
    flags.DEFINE_string("seeds", "0", "Comma-separated seeds, one replicate each.", flag_values=flag_values)
    flags.DEFINE_string("root", "runs", "Folder that holds the run folders.", flag_values=flag_values)
    flags.DEFINE_string("data_dir", "", "Folder of MNIST-format IDX files (or the tfds data dir); "
                        "default: $TFLTH_DATA_DIR, else the MNIST packaged with tflth (tfds for "
                        "other datasets).", flag_values=flag_values)
    flags.DEFINE_bool("test_every_eval", False, "Evaluate the test set at every evaluation, not only at a new "
                      "best validation loss and at the end.", flag_values=flag_values)
    flags.DEFINE_float("checkpoint_seconds", 60.0, "Checkpoint at an evaluation when waiting for the next "
                       "would leave more than this much training unsaved (a resume loses at most "
                       "max(one interval, this)).", flag_values=flag_values)
    flags.DEFINE_bool("quiet", False, "No progress lines.", flag_values=flag_values)
    flags.DEFINE_enum("strategy", "default", distribute.NAMES, "tf.distribute strategy (tflth.distribute): "
                      "mirrored = every local GPU, multi_worker = the cluster in TF_CONFIG. --batch_size is the "
                      "global batch, split over the replicas.", flag_values=flag_values)
    flags.DEFINE_bool("deterministic", True, "The same seed gives bit-identical runs: XLA on CPUs alone is "
                      "deterministic as it is; elsewhere (GPUs, --jit_compile=false) this turns on TensorFlow's "
                      "op determinism, under which Keras compiles without XLA (tflth.determinism).",
                      flag_values=flag_values)


def strategy(flag_values, batch_size, jit_compile=None):
    """The --strategy, with --deterministic applied for training with XLA or not (`jit_compile`,
    default --jit_compile); ValueError/RuntimeError for bad input (an unknown name, a malformed
    TF_CONFIG, a batch size the replicas cannot share)."""
    chosen = distribute.get_strategy(flag_values.strategy)
    distribute.check_batch_size(batch_size, chosen)
    if flag_values.deterministic:
        determinism.request(flag_values.jit_compile if jit_compile is None else jit_compile, chosen)
    return chosen


@contextlib.contextmanager
def distributed(chosen, flag_values):
    """Inside `chosen`'s scope, yields (root, verbose) for this process: the chief writes to
    --root and prints progress; another worker of a multi-worker run works on a private copy
    of --root (`tflth.distribute.worker_root`) and prints nothing."""
    with chosen.scope(), distribute.worker_root(flag_values.root, chosen) as root:
        yield root, not flag_values.quiet and distribute.is_chief(chosen)


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def bad_input(*also):
    """Checks and loading inside: a ValueError, RuntimeError or ImportError (an extra not
    installed; or one of `also`) is bad input, reported by `fail` with its first line, before
    anything is written."""
    try:
        yield
    except (ValueError, RuntimeError, ImportError, *also) as e:
        fail(str(e).splitlines()[0])


def done(chosen, folders):
    """The chief's last lines: the run folders, and the command that summarises them."""
    if distribute.is_chief(chosen):
        print(f"[tflth] done: {' '.join(folders)}\n[tflth] summarize with: {commands.invocation()} summarize "
              f"{' '.join(folders)}")


HELP = ("-h", "-help", "--help", "--helpshort")


def help_text(flag_values, program):
    """The command's own flags, in sections: those of each hparams dataclass (as
    `tflth.hparams.define_flags` files them), the command's, and those every runner takes."""
    groups = flag_values.flags_by_module_dict()
    mine = [m for m in groups if m.startswith("tflth.") or m.isidentifier()]  # sections: class names
    order = sorted(mine, key=lambda m: (m.startswith("tflth."), m == __name__))  # sections, the command's, common
    lines = [f"usage: {program} [--flag=value ...] [--flagfile=FILE]"]
    for module in order:
        title = ("flags of every run" if module == __name__ else "this command" if module.startswith("tflth.")
                 else module)
        lines.append(f"\n{title}:")
        for flag in sorted(groups[module], key=lambda f: f.name):
            quote = "'"  # absl quotes string defaults
            default = "" if flag.default in (None, "") else f" (default: {flag.default_as_str.strip(quote)})"
            lines.append(f"  --{flag.name}: {' '.join(flag.help.split())}{default}")
    lines.append("\n--helpfull also lists absl's own flags; a --flagfile holds flags one per line.")
    return "\n".join(lines)


def parse(flag_values):
    """An absl `flags_parser` that prints `help_text` for --help (exit 0), reads a --flagfile
    given by name from those tflth ships (`tflth.flagfiles`), turns a flag error into one line
    and exit status 2, and refuses NaN and infinities in every float flag (checks
    written `x <= 0` let NaN through)."""
    def parser(argv):
        if any(arg in HELP for arg in argv[1:]):
            print(help_text(flag_values, argv[0]))
            sys.exit(0)
        try:
            rest = flag_values(flagfiles.resolve(argv))
        except (ValueError, flags.Error) as e:
            fail(str(e).splitlines()[0])
        for name in flag_values:
            value = flag_values[name].value
            if isinstance(value, float) and not math.isfinite(value):
                fail(f"--{name}={value}: must be a finite number")
        return rest
    return parser


class Stopped(BaseException):
    """SIGTERM, raised where the main thread is (like KeyboardInterrupt for SIGINT)."""


def run(main, flag_values):
    """`absl.app.run(main)` with the flags parsed by `parse`, SIGTERM and Ctrl-C stopping the
    command with one line (workers and all, `tflth.lottery.parallel`), arguments that are not
    flags refused with one line, and RunFailure (and a
    full disk) reported as one line with exit status 1 instead of a traceback."""
    app.run(functools.partial(_guarded, main), flags_parser=parse(flag_values))


def _guarded(main, argv):
    def stop(signum, frame):
        raise Stopped(signum)
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return main(argv)
    except (Stopped, KeyboardInterrupt) as e:
        signum = e.args[0] if isinstance(e, Stopped) else signal.SIGINT
        print(f"[tflth] stopped by {signal.Signals(signum).name}; rerun the same command to resume", file=sys.stderr,
              flush=True)
        sys.exit(128 + signum)
    except RunFailure as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # a full disk met outside tflth.io (TensorBoard, Keras, a tuner)
        full = no_space(e)
        if full is None:
            raise
        print(f"error: {disk_full(getattr(full, 'filename', None))}", file=sys.stderr)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def csv(text, kind=str):
    """The comma-separated values of a flag, each converted by `kind`; ValueError for a value it
    refuses (and for NaN and infinities as floats)."""
    values = [kind(part.strip()) for part in text.split(",") if part.strip()]
    if kind is float and not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text!r}: not finite")
    return values


def common_args(flag_values):
    """(seeds, engine.train keyword arguments) from the common flags; ValueError if bad."""
    try:
        seeds = csv(flag_values.seeds, int)
    except ValueError:
        raise ValueError(f"--seeds={flag_values.seeds!r}: must be comma-separated integers") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds={flag_values.seeds!r}: give one or more integers >= 0")
    if flag_values.checkpoint_seconds < 0:
        raise ValueError(f"--checkpoint_seconds={flag_values.checkpoint_seconds}: must be >= 0")
    return seeds, {"checkpoint_seconds": flag_values.checkpoint_seconds,
                   "test_every_eval": flag_values.test_every_eval}
