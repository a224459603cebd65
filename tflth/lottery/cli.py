"""The command line of the lottery-ticket recipes: flags generated from the hparams.

Bad input prints one line and exits with status 2 before any folder is made (`tflth.cli`).
"""
from absl import flags

from tflth.cli import bad_input, common_args, csv, define_common_flags, distributed, done, run, strategy
from tflth.hparams import define_flags, from_flags
from tflth.lottery import branches, runner
from tflth.lottery.hparams import SECTIONS, LotteryHparams

FLAGS = flags.FLAGS


def define_run_flags(flag_values=FLAGS):
    for cls in SECTIONS:
        define_flags(cls, flag_values)
    flags.DEFINE_integer("levels", 3, "Pruning levels after the dense level 0.", flag_values=flag_values)
    flags.DEFINE_string("branches", ",".join(branches.CONTROLS),
                        f"Comma-separated control branches to run beside the ticket "
                        f"({', '.join(branches.CONTROLS)}); empty for none.", flag_values=flag_values)
    flags.DEFINE_string("control_levels", "", "Comma-separated levels at which to run the control "
                        "branches; empty for every level.", flag_values=flag_values)
    flags.DEFINE_integer("workers", 1, "Processes that train branches side by side (seeds, and a level's "
                         "controls beside the next ticket); each gets cores / workers threads.",
                         flag_values=flag_values)
    define_common_flags(flag_values)


def read_hparams(flag_values=FLAGS):
    """The LotteryHparams the parsed flags give; ValueError if bad."""
    return LotteryHparams(*(from_flags(cls, flag_values) for cls in SECTIONS))


def _main(argv):
    with bad_input():
        hparams = read_hparams()
        seeds, train_kw = common_args(FLAGS)
        chosen = strategy(FLAGS, hparams.dataset.batch_size)  # before TensorFlow starts (multi_worker needs it)
        controls = csv(FLAGS.branches)
        try:
            control_levels = csv(FLAGS.control_levels, int) or None
        except ValueError:
            raise ValueError(f"--control_levels={FLAGS.control_levels!r}: must be comma-separated integers") from None
        runner.check_run_args(hparams, FLAGS.levels, controls, FLAGS.workers, FLAGS.root, control_levels)
        if FLAGS.workers > 1 and FLAGS.strategy != "default":
            raise ValueError(f"--workers={FLAGS.workers}: worker processes cannot share one --strategy="
                             f"{FLAGS.strategy}; use --workers=1")
        data_dir = FLAGS.data_dir or None
        data = runner.load_data(hparams, data_dir)  # fails here, before any folder is made
    with distributed(chosen, FLAGS) as (root, verbose):
        folder = runner.run(hparams, levels=FLAGS.levels, seeds=seeds, controls=controls,
                            control_levels=control_levels, root=root, verbose=verbose,
                            workers=FLAGS.workers, data_dir=data_dir, data=data if FLAGS.workers == 1 else None,
                            **train_kw)
    done(chosen, [folder])


def main():
    define_run_flags()
    run(_main, FLAGS)
