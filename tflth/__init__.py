"""tflth: sparse neural networks on Keras 3 (lottery tickets, masked layers, pruning scores)."""
from tflth import data, layers, lottery, models, pruning

__version__ = "0.1.0"
__all__ = ["data", "layers", "lottery", "models", "pruning"]
