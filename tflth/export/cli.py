"""tflth export --run_dir runs/lottery_<hash> --level 17 --format sparse --out DIR

Exports the trained model of a run folder (lottery, L0, Bayesian, ablation: any lottery_ or
sparse_ folder) as a SavedModel (--format dense, sparse, compact) or a TFLite file
(--format tflite), checks it against the model on the test set, and prints a size report.
Bad input prints one line and exits with status 2; nothing is written then.
"""
import os
import tempfile
import warnings

import numpy as np
from absl import flags, logging

from tflth import data as tdata
from tflth import io
from tflth.cli import bad_input, fail, run
from tflth.export import from_run, saving

FLAGS = flags.FLAGS
FORMATS = saving.FORMATS + ("tflite",)
CHECK_EXAMPLES = 256


def define_flags(flag_values=FLAGS):
    flags.DEFINE_string("run_dir", None, "A run folder: lottery_<hash> or sparse_<hash>.", flag_values=flag_values)
    flags.DEFINE_integer("level", None, "The lottery level to export (lottery runs only).", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "The replicate (lottery) or seed (sparse training) to export.",
                         flag_values=flag_values)
    flags.DEFINE_string("branch", "main", "The lottery branch (main, reinit, random_prune, continue).",
                        flag_values=flag_values)
    flags.DEFINE_string("format", "sparse", "One of " + ", ".join(FORMATS) + ".", flag_values=flag_values)
    flags.DEFINE_string("out", None, "The SavedModel folder to write (a .tflite file for --format tflite).",
                        flag_values=flag_values)
    flags.DEFINE_bool("overwrite", False, "Replace --out if it exists.", flag_values=flag_values)
    flags.DEFINE_string("data_dir", "", "Folder of MNIST-format IDX files (default: as the recipes).",
                        flag_values=flag_values)


def _kb(n):
    return f"{n / 1000:,.1f} kB"


def report_lines(report):
    """The size report as printed lines."""
    kept, total = report["weights_kept"], report["weights"]
    sizes = f"{_kb(report['bytes'])} (gzipped {_kb(report['gzip_bytes'])})"
    if "variable_bytes" in report:
        sizes += f"; variables {_kb(report['variable_bytes'])}"
    sizes += f"; CSR limit {_kb(report['csr_limit_bytes'])} (32-bit indices)"
    if "csr_bytes" in report:
        sizes += (f"; CSR arrays stored {_kb(report['csr_bytes'])}, "
                  f"{report['csr_bytes'] / report['csr_limit_stored_index_bytes']:.2f}x their limit")
    lines = [f"  weights kept   {kept:,} of {total:,} ({100.0 * kept / total:.2f}%)", f"  size           {sizes}"]
    if report.get("stored_dense"):
        lines.append(f"  stored dense   {', '.join(report['stored_dense'])} (no sparse kernel for their kind)")
    if "parameters" in report:
        lines.append(f"  parameters     {report['parameters']:,} stored"
                     + (f"; units {report['units']} of {report['units_before']}" if "units" in report else ""))
    if "test_accuracy" in report:
        lines.append(f"  test accuracy  {100 * report['model_test_accuracy']:.2f}% (model), "
                     f"{100 * report['test_accuracy']:.2f}% (export); largest |difference| on {CHECK_EXAMPLES} test "
                     f"examples {report['max_abs_difference']:.2g}")
    return lines


def unwritable(path):
    """Why an export could not be written to `path`, or None. Asked before the model is loaded,
    and writing nothing outside the folder `path` goes in: if that folder exists, a probe folder
    is made in it and removed (root passes `os.access` on /proc); if not, the nearest folder above
    must be one that `os.access` lets us create folders in (the export makes the missing ones)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        try:
            os.rmdir(tempfile.mkdtemp(dir=folder, prefix=io.TMP_PREFIX))  # a leftover is cleared like any .tmp-
        except OSError as e:
            return f"cannot write in {folder} ({e.strerror})"
        return None
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create folders in {folder} (permission denied)"
    return None


def _os_reason(e):
    return f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e).splitlines()[0]


def _main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saving logs every file it writes
    for name in ("run_dir", "out"):
        if not getattr(FLAGS, name):
            fail(f"--{name} is required")
    if FLAGS.format not in FORMATS:
        fail(f"--format={FLAGS.format!r} is unknown; allowed: {', '.join(FORMATS)}")
    if os.path.exists(FLAGS.out) and not FLAGS.overwrite:
        fail(f"--out={FLAGS.out} exists; pass --overwrite to replace it")
    if FLAGS.format == "tflite" and os.path.isdir(FLAGS.out):
        fail(f"--out={FLAGS.out} is a folder; --format=tflite writes a file (e.g. model.tflite)")
    reason = unwritable(FLAGS.out)
    if reason:
        fail(f"--out={FLAGS.out} cannot be written: {reason}")
    with bad_input(OSError):
        model, hparams, what = from_run.load(FLAGS.run_dir, FLAGS.seed, FLAGS.level, FLAGS.branch)
        x, y = tdata.arrays(hparams.dataset.dataset, "test", data_dir=FLAGS.data_dir or None)
    x = x.astype(np.float32) / 255.0  # as the engine feeds it (tflth.engine.streams)
    sample = x[:CHECK_EXAMPLES]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if FLAGS.format == "tflite":
                report = saving.to_tflite(model, FLAGS.out, overwrite=FLAGS.overwrite, sample=sample)
                predict = saving.tflite_predictor(FLAGS.out)
            else:
                report = saving.save_sparse(model, FLAGS.out, FLAGS.format, overwrite=FLAGS.overwrite, sample=sample)
                predict = saving.saved_model_predictor(FLAGS.out)
        except (ValueError, RuntimeError) as e:
            fail(str(e).splitlines()[0])
        except OSError as e:  # what `unwritable` cannot see without writing (e.g. /proc/nope/x as root)
            fail(f"--out={FLAGS.out} cannot be written: {_os_reason(e)}")
    for w in caught:
        if "not pruned" in str(w.message):
            print(f"warning: {w.message}")
    report["model_test_accuracy"] = saving.accuracy(lambda b: model.predict(b, verbose=0), x, y)
    report["test_accuracy"] = saving.accuracy(predict, x, y)
    if FLAGS.format != "tflite":  # a SavedModel folder keeps its report
        saving.add_to_report(FLAGS.out, model_test_accuracy=report["model_test_accuracy"],
                             test_accuracy=report["test_accuracy"])
    print(f"[tflth] exported {what} as {FLAGS.format} to {FLAGS.out}")
    print("\n".join(report_lines(report)))
    load = ("tf.lite.Interpreter(model_path=...)" if FLAGS.format == "tflite"
            else "loaded = tf.saved_model.load(path); loaded.serve(x), x: float32 images in [0, 1]")
    print(f"  load with      {load}")


def main():
    define_flags()
    run(_main, FLAGS)
