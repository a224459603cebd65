"""tflth: sparse neural networks on Keras 3 (lottery tickets, masked, L0 and Bayesian layers, pruning scores)."""
from tflth import internals

internals.check_versions()  # before the modules that rely on the checked private API

from tflth import (bayes, data, distribute, engine, l0, layers, lottery, models, priors, pruning,  # noqa: E402
                   regularizers)

__version__ = "0.1.0"
__all__ = ["bayes", "data", "distribute", "engine", "l0", "layers", "lottery", "models", "priors", "pruning", "regularizers"]
