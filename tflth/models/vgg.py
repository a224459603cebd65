"""VGG for CIFAR, as open_lth's cifar_vgg (the lottery-ticket paper's VGG-19)."""
import keras

from tflth.models._common import Builder, apply_plan, batch_norm, dense_head, model_input

_PLANS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512),
}


def _vgg(plan_name, family, input_shape, num_classes, kernel_initializer, conv_bias,
         name, layer_kw):
    """Each conv: 3x3 same -> BatchNorm -> relu; then global average pool -> output.

    open_lth averages the final 2x2 map with AvgPool2d(2), i.e. globally for CIFAR.
    Convs have no bias by default: the BatchNorm after each one makes it redundant
    (open_lth keeps PyTorch's bias; pass conv_bias=True for that).
    """
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)

    def conv_bn_relu(x, filters, i):
        x = b.conv2d(filters, 3, name=f"conv{i}", padding="same", use_bias=conv_bias)(x)
        x = batch_norm(f"bn{i}")(x)
        return keras.layers.Activation("relu", name=f"relu{i}")(x)

    x = apply_plan(inputs, _PLANS[plan_name], conv_bn_relu)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = dense_head(x, b, (), num_classes)
    return keras.Model(inputs, outputs, name=name)


def vgg16(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer="he_normal", conv_bias=False, name="vgg16", **layer_kw):
    """VGG-16 for CIFAR-10: 14,724,042 trainable parameters."""
    return _vgg("vgg16", family, input_shape, num_classes, kernel_initializer, conv_bias,
                name, layer_kw)


def vgg19(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer="he_normal", conv_bias=False, name="vgg19", **layer_kw):
    """VGG-19 for CIFAR-10: 20,035,018 trainable parameters (paper: 20.0M)."""
    return _vgg("vgg19", family, input_shape, num_classes, kernel_initializer, conv_bias,
                name, layer_kw)
