"""What the recipes' command lines share: flags every runner takes, one-line errors, parsing.

Bad input (a missing flagfile, an unknown flag, a value out of range, data that cannot be
found) prints one line and exits with status 2 before any folder is made.
"""
import contextlib
import os
import sys

import tensorflow as tf
from absl import flags

from tflth import distribute


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
    flags.DEFINE_bool("deterministic", True, "TensorFlow op determinism (tf.config.experimental."
                      "enable_op_determinism): the same seed gives bit-identical runs, on GPU too. Keras "
                      "compiles without XLA while it is on, whatever --jit_compile asks.",
                      flag_values=flag_values)


def strategy(flag_values, batch_size):
    """The --strategy, with --deterministic applied; ValueError/RuntimeError for bad input
    (an unknown name, a malformed TF_CONFIG, a batch size the replicas cannot share)."""
    if flag_values.deterministic:
        tf.config.experimental.enable_op_determinism()
        os.environ["TF_DETERMINISTIC_OPS"] = "1"  # TensorFlow's own switch, for the --workers processes
    chosen = distribute.get_strategy(flag_values.strategy)
    distribute.check_batch_size(batch_size, chosen)
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


def parse(flag_values):
    """An absl `flags_parser` that turns a flag error into one line and exit status 2."""
    def parser(argv):
        try:
            return flag_values(argv)
        except flags.Error as e:
            fail(str(e).splitlines()[0])
    return parser


def csv(text, kind=str):
    return [kind(part.strip()) for part in text.split(",") if part.strip()]


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
