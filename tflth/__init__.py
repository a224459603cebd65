"""tflth: sparse neural networks on Keras 3 (lottery tickets, masked, L0 and Bayesian layers, pruning scores)."""
from tflth import startup

startup.import_tensorflow()  # without its C++ start-up info lines (tflth/startup.py says why)

from tflth import internals  # noqa: E402

internals.check_versions()  # before the modules that rely on the checked private API

from tflth import (bayes, data, distribute, engine, l0, layers, lottery, models, priors, pruning,  # noqa: E402
                   regularizers)
from tflth.conversion import sparsify  # noqa: E402

__version__ = "0.1.0"
__all__ = ["bayes", "data", "distribute", "engine", "l0", "layers", "lottery", "models", "priors", "pruning", "regularizers",
           "sparsify"]
