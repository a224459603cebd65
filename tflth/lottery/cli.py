"""The command line of the lottery-ticket recipes: flags generated from the hparams.

Bad input (a missing flagfile, an unknown flag, a value out of range, data that
cannot be found) prints one line and exits with status 2 before any folder is made.
"""
import sys

from absl import app, flags

from tflth.hparams import define_flags, from_flags
from tflth.lottery import branches, runner
from tflth.lottery.hparams import SECTIONS, LotteryHparams

FLAGS = flags.FLAGS


def define_run_flags(flag_values=FLAGS):
    for cls in SECTIONS:
        define_flags(cls, flag_values)
    flags.DEFINE_integer("levels", 3, "Pruning levels after the dense level 0.", flag_values=flag_values)
    flags.DEFINE_string("seeds", "0", "Comma-separated seeds, one replicate each.", flag_values=flag_values)
    flags.DEFINE_string("branches", ",".join(branches.CONTROLS),
                        f"Comma-separated control branches to run beside the ticket "
                        f"({', '.join(branches.CONTROLS)}); empty for none.", flag_values=flag_values)
    flags.DEFINE_string("control_levels", "", "Comma-separated levels at which to run the control "
                        "branches; empty for every level.", flag_values=flag_values)
    flags.DEFINE_string("root", "runs", "Folder that holds the run folders.", flag_values=flag_values)
    flags.DEFINE_string("data_dir", "", "Folder of MNIST-format IDX files (or the tfds data dir); "
                        "default: $TFLTH_DATA_DIR, else the MNIST packaged with tflth (tfds for "
                        "other datasets).", flag_values=flag_values)
    flags.DEFINE_integer("workers", 1, "Processes that train branches side by side (seeds, and a level's "
                         "controls beside the next ticket); each gets cores / workers threads.",
                         flag_values=flag_values)
    flags.DEFINE_bool("test_every_eval", False, "Evaluate the test set at every evaluation, not only at a new "
                      "best validation loss and at the end.", flag_values=flag_values)
    flags.DEFINE_float("checkpoint_seconds", 60.0, "Checkpoint at an evaluation when waiting for the next "
                       "would leave more than this much training unsaved (a resume loses at most "
                       "max(one interval, this)).",
                       flag_values=flag_values)
    flags.DEFINE_bool("quiet", False, "No progress lines.", flag_values=flag_values)


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse(argv):
    try:
        return FLAGS(argv)
    except flags.Error as e:
        _fail(str(e).splitlines()[0])


def _csv(text, kind=str):
    return [kind(part) for part in text.split(",") if part.strip()]


def _main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    try:
        hparams = LotteryHparams(*(from_flags(cls, FLAGS) for cls in SECTIONS))
        try:
            seeds = _csv(FLAGS.seeds, int)
        except ValueError:
            raise ValueError(f"--seeds={FLAGS.seeds!r}: must be comma-separated integers") from None
        if not seeds or min(seeds) < 0:
            raise ValueError(f"--seeds={FLAGS.seeds!r}: give one or more integers >= 0")
        controls = _csv(FLAGS.branches)
        try:
            control_levels = _csv(FLAGS.control_levels, int) or None
        except ValueError:
            raise ValueError(f"--control_levels={FLAGS.control_levels!r}: must be comma-separated integers") from None
        if FLAGS.checkpoint_seconds < 0:
            raise ValueError(f"--checkpoint_seconds={FLAGS.checkpoint_seconds}: must be >= 0")
        runner.check_run_args(hparams, FLAGS.levels, controls, FLAGS.workers, FLAGS.root)
        data_dir = FLAGS.data_dir or None
        data = runner.load_data(hparams, data_dir)  # fails here, before any folder is made
    except (ValueError, RuntimeError) as e:
        _fail(str(e).splitlines()[0])
    folder = runner.run(hparams, levels=FLAGS.levels, seeds=seeds, controls=controls,
                        control_levels=control_levels, root=FLAGS.root, verbose=not FLAGS.quiet,
                        workers=FLAGS.workers, checkpoint_seconds=FLAGS.checkpoint_seconds,
                        test_every_eval=FLAGS.test_every_eval, data_dir=data_dir,
                        data=data if FLAGS.workers == 1 else None)
    print(f"[tflth] done: {folder}\n[tflth] summarize with: python tools/summarize.py {folder}")


def main():
    define_run_flags()
    app.run(_main, flags_parser=_parse)
