"""Dependencies that only some features need, installed as pip extras (setup.cfg)."""
import importlib

EXTRAS = {"keras_tuner": "tuning", "tensorflow_datasets": "datasets"}  # module -> the extra that installs it


def need(module, feature):
    """`module` imported, or an ImportError (one line) naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ImportError(f"{feature} needs {module}, which tflth installs as an extra: "
                          f"pip install 'tflth[{EXTRAS[module]}]'") from None
