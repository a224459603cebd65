"""The command line of the ablation study (`recipes/ablation.py`): the shared data, model and
training flags, --methods, --keep (% of weights kept) and --seeds; bad input prints one line and
exits with status 2 before any folder is made. Rerunning the command skips finished cells."""
import os
import sys

from absl import flags

from tflth import distribute, io
from tflth.ablation import methods as m
from tflth.ablation import report, runner
from tflth.cli import bad_input, common_args, csv, define_common_flags, distributed, fail, run, strategy
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.hparams import define_flags, from_flags
from tflth.runs import load_data
from tflth.trainer.hparams import ModelHparams

FLAGS = flags.FLAGS


def define_run_flags(flag_values=FLAGS):
    define_flags(DatasetHparams, flag_values)
    define_flags(TrainingHparams, flag_values)
    flags.DEFINE_string("model", "lenet_300_100", "Architecture (tflth.models).", flag_values=flag_values)
    flags.DEFINE_string("methods", ",".join(m.NAMES), "Comma-separated methods: " + ", ".join(m.NAMES)
                        + " (tflth/ablation/methods.py says what each runs).", flag_values=flag_values)
    flags.DEFINE_string("keep", "10,5,2", "Comma-separated % of weights kept, decreasing.", flag_values=flag_values)
    flags.DEFINE_string("out", "", "Folder for ablation.json, .md and .png; default: <root>/ablation.",
                        flag_values=flag_values)
    flags.DEFINE_string("baseline", "", "A method of --methods that every other is compared with, paired on seeds "
                        "and test examples (a 95% interval of the difference, tflth.stats.paired_difference); "
                        "empty: none.",
                        flag_values=flag_values)
    flags.DEFINE_bool("check", False, "Train nothing and read no run: make <out>/ablation.md again from "
                      "<out>/ablation.json and fail (exit 1) on the first line that differs.", flag_values=flag_values)
    flags.DEFINE_bool("collect_only", False, "Train nothing: write the table and plot of the cells finished so far "
                      "(safe while the study runs in another process). Cells missing under --root but recorded in "
                      "<out>/ablation.json with the same run folder are kept from there.", flag_values=flag_values)
    define_common_flags(flag_values)


def _main(argv):
    out = FLAGS.out or os.path.join(FLAGS.root, "ablation")
    if FLAGS.check:
        try:
            difference = report.check(out)
        except ValueError as e:
            fail(str(e))
        if difference:
            print(f"error: {difference}", file=sys.stderr)
            sys.exit(1)
        print(f"[ablation] {out}/ablation.md is what {out}/ablation.json gives")
        return
    with bad_input():  # fails here, before any folder
        ModelHparams(FLAGS.model)  # checks --model
        study = runner.Study(from_flags(DatasetHparams, FLAGS), FLAGS.model, from_flags(TrainingHparams, FLAGS))
        methods = csv(FLAGS.methods)
        try:
            keep = csv(FLAGS.keep, float)
        except ValueError:
            raise ValueError(f"--keep={FLAGS.keep!r}: must be comma-separated numbers") from None
        seeds, train_kw = common_args(FLAGS)
        report.check_baseline(FLAGS.baseline, methods, seeds)
        chosen = strategy(FLAGS, study.dataset.batch_size)  # before TensorFlow starts (multi_worker needs it)
        runner.check(study, methods, keep, FLAGS.root)
        data = None if FLAGS.collect_only else load_data(runner.imp_hparams(study), FLAGS.data_dir or None)
    with distributed(chosen, FLAGS) as (root, verbose):
        if FLAGS.collect_only:
            result = runner.collect(study, methods, keep, seeds, root)
        else:
            result = runner.run(study, methods, keep, seeds, root=root, data=data, verbose=verbose, **train_kw)
    if not distribute.is_chief(chosen):
        return  # the chief writes the table
    earlier = os.path.join(out, "ablation.json")
    if os.path.exists(earlier):
        result = runner.add_recorded(result, io.read_json(earlier))
    if FLAGS.collect_only:
        print(f"[ablation] {len(result['cells'])} cells finished, {len(result['missing'])} not yet")
    text = report.write(result, methods, keep, out, title=f"{FLAGS.model} on {study.dataset.dataset}",
                        baseline=FLAGS.baseline, seeds=seeds, command=" ".join(["tflth ablation",
                                                                                 *sys.argv[1:]]))
    print(text + f"\n[tflth] ablation written to {out}")


def main():
    define_run_flags()
    run(_main, FLAGS)
