"""Fully connected networks."""
import keras

from tflth.models._common import Builder, dense_head, model_input


def lenet_300_100(family="masked", input_shape=(28, 28, 1), num_classes=10,
                  kernel_initializer="glorot_normal", name="lenet_300_100", **layer_kw):
    """LeNet-300-100 (LeCun et al. 1998; Frankle & Carbin 2019): 266,610 parameters."""
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)
    x = keras.layers.Flatten(name="flatten")(inputs)
    outputs = dense_head(x, b, (300, 100), num_classes)
    return b.model(inputs, outputs, name)
