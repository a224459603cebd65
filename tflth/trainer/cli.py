"""The command line of the sparse-training recipes (`recipes/mnist_l0.py`, `recipes/mnist_bayes.py`):
flags generated from the hparams, one line and exit status 2 for bad input, nothing written
before the data is found.

--penalty and --strength take comma-separated lists to compare penalties in one command:
each (penalty, strength) pair is its own run folder, and the summarize line names them all.
"""
import dataclasses

from absl import flags

from tflth.cli import bad_input, common_args, csv, define_common_flags, distributed, done, run, strategy
from tflth.hparams import define_flags, from_flags
from tflth.runs import load_data
from tflth.trainer import runner
from tflth.trainer.hparams import SECTIONS, SparsityHparams, TrainerHparams

FLAGS = flags.FLAGS


def define_run_flags(flag_values=FLAGS):
    for cls in SECTIONS:
        define_flags(cls, flag_values, exclude=("strength",))
    strength = next(f for f in dataclasses.fields(SparsityHparams) if f.name == "strength")
    flags.DEFINE_string("strength", str(strength.default), strength.metadata["help"] + " Comma-separated: one "
                        "per --penalty (which also takes a list, to compare penalties in one command).",
                        flag_values=flag_values)
    define_common_flags(flag_values)


def variants(flag_values):
    """One TrainerHparams per (penalty, strength): --strength is one value for all, or one each."""
    penalties = csv(flag_values.penalty)
    try:
        strengths = csv(flag_values.strength, float)
    except ValueError:
        raise ValueError(f"--strength={flag_values.strength!r}: must be comma-separated numbers") from None
    if not penalties:
        raise ValueError("--penalty is empty; give one or more penalties")
    if len(strengths) not in (1, len(penalties)):
        raise ValueError(f"--strength={flag_values.strength!r}: give one value, or one per --penalty "
                         f"({len(penalties)})")
    strengths = strengths * len(penalties) if len(strengths) == 1 else strengths
    sections = [from_flags(cls, flag_values) for cls in SECTIONS if cls is not SparsityHparams]
    rest = {f.name: flag_values[f.name].value for f in dataclasses.fields(SparsityHparams)
            if f.name not in ("penalty", "strength")}
    return [TrainerHparams(*sections, SparsityHparams(penalty=p, strength=s, **rest))
            for p, s in zip(penalties, strengths)]


def _main(argv):
    with bad_input():
        all_hparams = variants(FLAGS)
        seeds, train_kw = common_args(FLAGS)
        chosen = strategy(FLAGS, all_hparams[0].dataset.batch_size)  # before TensorFlow starts (multi_worker)
        for hparams in all_hparams:
            runner.check_run_args(hparams, FLAGS.root)
        data = load_data(all_hparams[0], FLAGS.data_dir or None)  # fails here, before any folder is made
    with distributed(chosen, FLAGS) as (root, verbose):
        folders = [runner.run(hparams, seeds=seeds, root=root, data=data, verbose=verbose, **train_kw)
                   for hparams in all_hparams]
    done(chosen, folders)


def main(defaults=None):
    """Runs the command line; `defaults` ({flag: value}) are a recipe's own flag defaults."""
    define_run_flags()
    for name, value in (defaults or {}).items():
        FLAGS.set_default(name, value)
    run(_main, FLAGS)
