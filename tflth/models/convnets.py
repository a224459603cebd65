"""Small convolutional networks: Caffe's LeNet-5 and Frankle & Carbin's Conv-2/4/6."""
import keras

from tflth.models._common import Builder, apply_plan, dense_head, model_input


def lenet5(family="masked", input_shape=(28, 28, 1), num_classes=10,
           kernel_initializer="glorot_normal", name="lenet5", **layer_kw):
    """LeNet-5 as in Caffe's lenet_train_test.prototxt: 431,080 parameters.

    conv20 5x5 -> pool -> conv50 5x5 -> pool -> fc500 relu -> output. As in Caffe
    the convolutions are linear (no activation); only fc1 has a relu.
    """
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)
    conv = lambda x, filters, i: b.conv2d(filters, 5, name=f"conv{i}")(x)  # noqa: E731
    x = apply_plan(inputs, (20, "M", 50, "M"), conv)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = dense_head(x, b, (500,), num_classes)
    return b.model(inputs, outputs, name)


_CONV_PLANS = {
    "conv2": (64, 64, "M"),
    "conv4": (64, 64, "M", 128, 128, "M"),
    "conv6": (64, 64, "M", 128, 128, "M", 256, 256, "M"),
}


def _conv_n(plan_name, family, input_shape, num_classes, kernel_initializer, name,
            layer_kw):
    """Frankle & Carbin 2019, Figure 2: 3x3 same convs with relu, fc 256, 256, 10."""
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)

    def conv(x, filters, i):
        return b.conv2d(filters, 3, name=f"conv{i}", padding="same", activation="relu")(x)

    x = apply_plan(inputs, _CONV_PLANS[plan_name], conv)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = dense_head(x, b, (256, 256), num_classes)
    return b.model(inputs, outputs, name or plan_name)


def conv2(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer="glorot_normal", name="conv2", **layer_kw):
    """Conv-2 for CIFAR-10: 4,301,642 parameters (paper: 4.3M)."""
    return _conv_n("conv2", family, input_shape, num_classes, kernel_initializer, name,
                   layer_kw)


def conv4(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer="glorot_normal", name="conv4", **layer_kw):
    """Conv-4 for CIFAR-10: 2,425,930 parameters (paper: 2.4M)."""
    return _conv_n("conv4", family, input_shape, num_classes, kernel_initializer, name,
                   layer_kw)


def conv6(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer="glorot_normal", name="conv6", **layer_kw):
    """Conv-6 for CIFAR-10: 2,262,602 parameters.

    The paper's Figure 2 says 1.7M total but 1.1M in convolutions, which this
    architecture matches (1,145,408); fc1 alone has 4*4*256*256 = 1.05M weights,
    so its 1.7M total cannot hold for the architecture it describes.
    """
    return _conv_n("conv6", family, input_shape, num_classes, kernel_initializer, name,
                   layer_kw)
