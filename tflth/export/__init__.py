"""Export: pruned models that are really smaller and load with TensorFlow alone.

- `strip(model)`: a plain Keras 3 model, masks folded in, L0 gates and Bayesian layers made
  deterministic;
- `save_sparse(model, path, format="dense" | "sparse" | "compact")`: a checked SavedModel;
- `to_tflite(model, path)`: a checked TFLite file;
- `tflth export --run_dir ... --format ... --out ...`: the same from a run folder.
"""
from tflth.export.saving import FORMATS, export_model, folder_sizes, save_sparse, to_tflite, tflite_bytes
from tflth.export.strip import strip

__all__ = ["export_model", "folder_sizes", "save_sparse", "strip", "tflite_bytes", "to_tflite"]
