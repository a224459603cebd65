"""Reference architectures of the lottery-ticket literature, in any layer family.

Every function takes `family` (a name or LayerFamily) and builds all its Dense and
Conv2D layers through it; models return logits and their last layer is "output".
"""
from tflth.models.convnets import conv2, conv4, conv6, lenet5
from tflth.models.mlp import lenet_300_100
from tflth.models.resnet import resnet20, resnet56
from tflth.models.vgg import vgg16, vgg19

MODELS = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "resnet20": resnet20,
    "resnet56": resnet56,
}
"""The architectures by name (`get_model(name, ...)`, the `--model` flag)."""


def get_model(name, **kw):
    """Builds the model registered as `name`; `kw` goes to its function."""
    if name not in MODELS:
        raise ValueError(f"model {name!r} is unknown; allowed: {sorted(MODELS)}")
    return MODELS[name](**kw)


__all__ = ["MODELS", "get_model", *MODELS]
