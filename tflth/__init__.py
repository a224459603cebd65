"""tflth: sparse neural networks on Keras 3 (lottery tickets, masked layers, pruning scores)."""
from tflth import data, engine, l0, layers, lottery, models, pruning, regularizers

__version__ = "0.1.0"
__all__ = ["data", "engine", "l0", "layers", "lottery", "models", "pruning", "regularizers"]
