"""The command line of a keras-tuner search (`recipes/tune.py`; `recipes/tune_lottery.py` with
`lottery=True`): the sparse-training (or lottery) runner's flags give the base run, --search the
ranges, --tuner and --objective the search; bad input prints one line and exits with status 2
before any folder is made. Rerunning the command resumes the search; a larger --max_trials goes
on with more trials."""
import functools

import keras_tuner
from absl import flags

from tflth.cli import bad_input, common_args, define_common_flags, fail, run, strategy
from tflth.hparams import define_flags, from_flags
from tflth.runs import load_data
from tflth.tuning import search
from tflth.tuning.hypermodel import StoppedByFailure
from tflth.tuning.search import LOTTERY_SECTIONS, SECTIONS, LotteryTuneHparams, TuneHparams

FLAGS = flags.FLAGS
KINDS = {False: (SECTIONS, TuneHparams), True: (LOTTERY_SECTIONS, LotteryTuneHparams)}  # by `lottery`


def define_run_flags(flag_values=FLAGS, lottery=False):
    for cls in KINDS[lottery][0]:
        define_flags(cls, flag_values)
    flags.DEFINE_integer("max_trials", 10, "random, bayesian: trials in all (a rerun with more goes on).",
                         flag_values=flag_values)
    flags.DEFINE_string("export", "compact", "Export the best trial's model to <search folder>/best as: "
                        + ", ".join(search.EXPORTS) + " (tflth.export).", flag_values=flag_values)
    define_common_flags(flag_values)


def read_hparams(flag_values=FLAGS, lottery=False):
    """The search (TuneHparams, or LotteryTuneHparams) the parsed flags give; ValueError if bad."""
    sections, kind = KINDS[lottery]
    return kind(*(from_flags(cls, flag_values) for cls in sections))


def _main(argv, lottery=False):
    with bad_input():
        hparams = read_hparams(FLAGS, lottery)
        seeds, train_kw = common_args(FLAGS)
        if FLAGS.strategy == "multi_worker":
            raise ValueError("--strategy=multi_worker: a search runs on one machine (mirrored uses its GPUs); for "
                             "many machines run keras-tuner's own distributed tuning")
        if FLAGS.max_trials < 1:
            raise ValueError(f"--max_trials={FLAGS.max_trials}: must be >= 1")
        if FLAGS.export not in search.EXPORTS:
            raise ValueError(f"--export={FLAGS.export!r}: allowed: {', '.join(search.EXPORTS)}")
        if FLAGS.tuner == "hyperband" and FLAGS["max_trials"].present and not FLAGS.quiet:  # maybe from a flagfile
            print("[tune] --max_trials is not used by hyperband: --max_epochs and --factor set its trials")
        # A search over --jit_compile has trials without XLA: those need op determinism.
        searched = {part.split("=")[0].strip() for part in hparams.search.search.split(",")}
        chosen = strategy(FLAGS, hparams.dataset.batch_size, FLAGS.jit_compile and "jit_compile" not in searched)
        search.check(hparams, FLAGS.root, seeds)
        data = load_data(hparams.base, FLAGS.data_dir or None)  # fails here, before any folder is made
    try:
        folder, rows, report = search.run(
            hparams, max_trials=FLAGS.max_trials, seeds=seeds, root=FLAGS.root, data=data,
            data_dir=FLAGS.data_dir or None, export=FLAGS.export, verbose=not FLAGS.quiet,
            distribution_strategy=None if FLAGS.strategy == "default" else chosen, **train_kw)
    except StoppedByFailure as e:  # tflth.cli.run reports it (exit 1)
        raise e.failure from None
    except keras_tuner.errors.FatalError as e:  # the same for every trial (e.g. a batch size the replicas cannot split)
        fail(str(e).splitlines()[0])
    except RuntimeError as e:  # keras-tuner stops after consecutive failed trials; finished ones are kept
        fail(f"{str(e).splitlines()[0]} (each failed trial's error is in its trial.json under the search folder's "
             "tuner/; rerunning resumes)")
    print(search.table(rows, search.title(hparams)))
    print(search.summary_line(rows, hparams))
    if report is not None:
        print(f"[tune] exported trial {report['trial']} ({report['what']}) as {FLAGS.export} to {folder}/best: "
              f"{report['weights_kept']:,} of {report['weights']:,} weights, test accuracy "
              f"{100 * report['test_accuracy']:.2f}% (model {100 * report['model_test_accuracy']:.2f}%)")
    print(f"[tflth] done: {folder}")


def main(lottery=False):
    define_run_flags(lottery=lottery)
    run(functools.partial(_main, lottery=lottery), FLAGS)
