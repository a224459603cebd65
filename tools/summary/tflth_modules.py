"""tflth's modules that need no TensorFlow, loaded from their files: `import tflth` runs the
package's __init__, which imports TensorFlow, and summarize must not."""
import importlib.util
import os
import sys


def load(name):
    """tflth/<name>.py: the module `tflth.<name>` itself where tflth is imported already (one copy
    in a process), else its file, in the tflth that find_spec locates without executing it or,
    for a checkout that is not installed, in the tflth/ beside tools/."""
    if f"tflth.{name}" in sys.modules:
        return sys.modules[f"tflth.{name}"]
    try:
        spec = importlib.util.find_spec("tflth")
    except (ImportError, ValueError):
        spec = None
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    folders = [*((spec.submodule_search_locations or []) if spec else []), os.path.join(checkout, "tflth")]
    path = next((p for p in (os.path.join(f, f"{name}.py") for f in folders) if os.path.isfile(p)), None)
    if path is None:
        raise ImportError(f"summarize: tflth/{name}.py not found (looked in {', '.join(folders)})")
    spec = importlib.util.spec_from_file_location(f"_tflth_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


schema = load("schema")  # what the runners write: run-folder layout, metrics.json keys, lottery branches
stats = load("stats")  # describe, paired_by_seed
