"""Reference architectures of the lottery-ticket literature, in any layer family.

Every function takes `family` (a name or LayerFamily) and builds all its Dense and
Conv2D layers through it; models return logits and their last layer is "output".
"""
from tflth.models import external
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
"""The architectures by name (`get_model(name, ...)`, the `--model` flag); `--model` also takes
`keras.applications.NAME` and `package.module:function` (tflth/models/external.py)."""


def check_model(name):
    """ValueError (one line, naming `--model`) unless `get_model` can build `name`."""
    if name in MODELS:
        return
    if not external.is_external(name):
        raise ValueError(f"--model={name!r}: allowed: {', '.join(sorted(MODELS))}, "
                         "keras.applications.NAME or package.module:function")
    external.check(name)


def get_model(name, **kw):
    """Builds the model registered as `name` (or one of tflth/models/external.py); `kw` goes to its
    function."""
    check_model(name)
    return MODELS[name](**kw) if name in MODELS else external.build(name, **kw)


__all__ = ["MODELS", "check_model", "get_model", *MODELS]
