"""Writing a pruned model so that TensorFlow alone can load it, and saying how big it is.

    report = save_sparse(model, "out/model", format="sparse")   # a SavedModel folder
    loaded = tf.saved_model.load("out/model")                   # in any process, no tflth needed
    loaded.serve(x)                                             # (keep `loaded`: serve needs its variables)
    to_tflite(model, "out/model.tflite")                        # TFLite, with its sparsity encoding

Every export is checked before it is kept: weights that are NaN or infinite are refused by name
(`check_finite`), and the written model is loaded back and run on a sample batch, whose outputs
must equal the model's (evaluation mode) within `atol` + `rtol` x |output| (a float32 sum taken
in another order differs by about 1e-7 of its terms). Folders and files
appear only once complete (`tflth.io.atomic_dir` / `atomic_path`).
"""
import gzip
import io as _io
import os
import tarfile
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from tflth import internals, io
from tflth.export.sparse import csr_limit_bytes, index_dtype, sparse_layer
from tflth.cloning import replace_layers
from tflth.export.strip import strip
from tflth.pruning import compact as compaction
from tflth.pruning.compact import is_weighted
from tflth.pruning.masks import prunable_layers
from tflth.pruning.prunable import deployed_weights, is_prunable

FORMATS = ("dense", "sparse", "compact")
"""The SavedModel formats `save` writes: dense kernels, sparse (CSR) kernels, or fewer units."""
REPORT = "tflth_export.json"


def check_format(format):
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is unknown; allowed: {', '.join(FORMATS)}")


def _sparsify(layer):
    if not is_weighted(layer):
        return None
    kernel, bias = (np.asarray(w) for w in (layer.kernel, layer.bias if layer.use_bias else 0.0))
    return sparse_layer(layer, kernel, bias)


def export_model(model, format):
    """The plain Keras model that `save_sparse` writes for `format` (see the module docstring of
    tflth.export)."""
    check_format(format)
    plain = strip(model)
    if format == "compact":
        return compaction.compact(plain, name=f"{model.name}_compact")
    if format == "sparse":
        return replace_layers(plain, _sparsify)
    return plain


def kernel_counts(model):
    """{"weights_kept", "weights", "csr_limit_bytes" (32-bit indices), "csr_limit_stored_index_bytes"
    (with the column-index width the sparse format stores)} over the Dense and Conv2D kernels of
    `model` (any family), counted on the deployed weights."""
    counts = dict.fromkeys(("weights_kept", "weights", "csr_limit_bytes", "csr_limit_stored_index_bytes"), 0)
    for layer in internals.all_layers(model):
        if is_prunable(layer) or is_weighted(layer):
            kernel = deployed_weights(layer)[0]
            nonzero, rows = int(np.count_nonzero(kernel)), kernel.shape[-1]
            stored = np.dtype(index_dtype(kernel.size // rows)).itemsize
            counts["weights_kept"] += nonzero
            counts["weights"] += kernel.size
            counts["csr_limit_bytes"] += csr_limit_bytes(nonzero, rows)
            counts["csr_limit_stored_index_bytes"] += csr_limit_bytes(nonzero, rows, index_bytes=stored)
    return counts


def folder_sizes(path):
    """{"bytes": every file, "gzip_bytes": the folder as a .tar.gz, "variable_bytes": the
    SavedModel's variables (its variables/ folder)}; a file's size for a file."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
        return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9))}
    sizes = {"bytes": 0, "variable_bytes": 0}
    for folder, _, files in os.walk(path):
        for name in files:
            size = os.path.getsize(os.path.join(folder, name))
            sizes["bytes"] += size
            if os.path.basename(folder) == "variables":
                sizes["variable_bytes"] += size
    buffer = _io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        tar.add(path, arcname=".")
    sizes["gzip_bytes"] = len(buffer.getvalue())
    return sizes


def units(model):
    """The output units of the model's Dense and Conv2D layers, e.g. "300-100-10"."""
    return "-".join(str(layer.kernel.shape[-1]) for layer in internals.all_layers(model)
                    if is_weighted(layer))


def _sample(model, sample):
    if sample is not None:
        return np.asarray(sample, np.float32)
    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; pass sample= (a batch to check with)")
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(0).uniform(size=(16,) + shape).astype(np.float32)


def _check(expected, got, atol, rtol, what):
    expected, got = np.asarray(expected), np.asarray(got)
    difference = float(np.max(np.abs(expected - got)))
    if not np.all(np.abs(expected - got) <= atol + rtol * np.abs(expected)):
        raise RuntimeError(f"{what}: outputs differ from the model's by up to {difference:.3g} (allowed: {atol:g} + "
                           f"{rtol:g} x |output|); "
                           "nothing was written")
    return difference


def check_finite(model):
    """ValueError naming the variables of `model` that hold NaN or infinities. Without it such a
    model fails the export's output check with a difference of "nan", which does not say why."""
    bad = []
    for variable in model.weights:
        if keras.backend.is_float_dtype(variable.dtype):
            values = np.asarray(variable)
            count = int(np.count_nonzero(~np.isfinite(values)))
            if count:
                bad.append(f"{variable.path} ({count:,} of {values.size:,})")
    if bad:
        named = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"model {model.name!r} has weights that are NaN or infinite: {named}; nothing was written")


def _start(model, path, overwrite, sample):
    """What every export checks first: (the sample batch, `kernel_counts`); warns if nothing is pruned."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    check_finite(model)
    counts = kernel_counts(model)
    if counts["weights_kept"] == counts["weights"]:
        warnings.warn("the model is not pruned (every kernel weight is non-zero): the export will not be smaller",
                      stacklevel=3)
    return _sample(model, sample), counts


def write_saved_model(model, path):
    """A SavedModel of `model`'s evaluation-mode forward pass: `serve(x)` and the signature
    "serving_default", as `keras.Model.export` writes them. Not `model.export` itself: Keras 3.15's
    export archive saves every variable twice (as the Keras variable and as the tf.Variable its
    endpoint uses), doubling the file."""
    specs = [tf.TensorSpec(x.shape, x.dtype, name=x.name) for x in model.inputs]
    module = tf.Module()
    module.weights = [v.value for v in model.variables]  # tracked once, as tf.Variables

    def serve(*x):
        return model(list(x) if len(x) > 1 else x[0], training=False)

    module.serve = tf.function(serve, input_signature=specs)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def save_sparse(model, path, format="sparse", overwrite=False, sample=None, atol=1e-5, rtol=1e-6):
    """Writes `model` (any tflth family, or plain Keras) to the folder `path` as a SavedModel with
    a serving signature (`tf.saved_model.load(path).serve(x)`), in `format`:
      "dense":   plain kernels with their zeros (compresses well);
      "sparse":  Dense and Conv2D kernels in CSR form, computed with sparse ops (tflth/export/sparse.py);
                 other kinds (Conv1D, EinsumDense, ...) stay dense, listed in the report's "stored_dense";
      "compact": entirely pruned neurons and filters removed (tflth.pruning.compact).
    Returns a report (also written to `path/tflth_export.json`): sizes, weights kept, the CSR limit
    and the largest difference from the model's outputs on `sample` (default: 16 random inputs)."""
    check_format(format)
    sample, counts = _start(model, path, overwrite, sample)
    exported = export_model(model, format)
    expected = model(sample, training=False)
    with io.atomic_dir(path, overwrite) as tmp:
        write_saved_model(exported, tmp)
        difference = _check(expected, saved_model_predictor(tmp)(sample), atol, rtol,
                            f"{format} export of {model.name!r}")
        report = {"format": format, **counts, "max_abs_difference": difference,
                  "parameters": int(exported.count_params()), **folder_sizes(tmp)}
        if format == "compact":
            report["units"], report["units_before"] = units(exported), units(model)
        if format == "sparse":  # the CSR arrays alone, beside the biases and other variables
            report["csr_bytes"] = sum(v.numpy().nbytes for layer in internals.all_layers(exported)
                                      if hasattr(layer, "csr") for v in layer.csr()[:3])
            # Kinds without a sparse kernel (all but Dense and Conv2D in the model's graph) stay dense.
            stored_sparse = {layer.name for layer in internals.all_layers(exported) if hasattr(layer, "csr")}
            report["stored_dense"] = [layer.name for layer in prunable_layers(model) if layer.name not in stored_sparse]
        io.write_json(os.path.join(tmp, REPORT), report)
    return report


def add_to_report(path, **fields):
    """Records what was measured after the export (e.g. test accuracies) in its report file."""
    file = os.path.join(path, REPORT)
    io.write_json(file, {**io.read_json(file), **fields})


def accuracy(predict, x, y, batch=1000):
    """The accuracy of `predict` (images -> class scores) on (x, y), in batches."""
    right = sum(int(np.sum(np.argmax(predict(x[i:i + batch]), axis=-1) == y[i:i + batch]))
                for i in range(0, len(x), batch))
    return right / len(x)


def saved_model_predictor(path):
    """x -> outputs of the SavedModel at `path` (as numpy)."""
    loaded = tf.saved_model.load(path)  # held by the closure: its functions need its variables alive
    return lambda x: np.asarray(loaded.serve(np.asarray(x, np.float32)))


def tflite_predictor(model, threads=None):
    """x -> outputs of a TFLite model (a file path or the flatbuffer's bytes), run with `threads`
    threads (None: TFLite's default)."""
    with warnings.catch_warnings():  # TF 2.21 says tf.lite.Interpreter moves to ai_edge_litert
        warnings.simplefilter("ignore")
        source = dict(model_content=model) if isinstance(model, bytes) else dict(model_path=os.fspath(model))
        interpreter = tf.lite.Interpreter(**source, num_threads=threads)
    interpreter.allocate_tensors()
    (entry,), (exit_,) = interpreter.get_input_details(), interpreter.get_output_details()

    def predict(x):
        x = np.asarray(x, np.float32)
        if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
            interpreter.resize_tensor_input(entry["index"], x.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(exit_["index"])
    return predict


def tflite_bytes(model, sparse=True):
    """The TFLite flatbuffer of `strip(model)`; `sparse`: with TFLite's sparsity optimisation
    (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`: kernels that are sparse enough are stored in its
    sparse encoding)."""
    with tempfile.TemporaryDirectory() as folder:
        write_saved_model(strip(model), folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return converter.convert()


def to_tflite(model, path, sparse=True, overwrite=False, sample=None, atol=1e-5, rtol=1e-6):
    """Writes `model` as a TFLite file at `path` (see `tflite_bytes`), checked against the model's
    outputs on `sample` like `save_sparse`; returns its report."""
    sample, counts = _start(model, path, overwrite, sample)
    content = tflite_bytes(model, sparse)
    difference = _check(model(sample, training=False), tflite_predictor(content)(sample), atol, rtol,
                        f"TFLite export of {model.name!r}")
    with io.atomic_path(path, suffix=".tflite") as tmp, open(tmp, "wb") as f:
        f.write(content)
    return {"format": "tflite", **counts, "max_abs_difference": difference, **folder_sizes(path)}
