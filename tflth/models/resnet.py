"""ResNets for CIFAR (He et al. 2016, section 4.2), as open_lth's cifar_resnet."""
import keras

from tflth.models._common import Builder, batch_norm, dense_head, model_input


def _block(x, b, filters, stride, prefix):
    """conv-BN-relu-conv-BN, plus the shortcut, then relu.

    When the shape changes the shortcut is a 1x1 conv + BN projection, built by the
    family like every conv, so it is pruned too.
    """
    y = b.conv2d(filters, 3, strides=stride, padding="same", use_bias=False,
                 name=f"{prefix}_conv1")(x)
    y = batch_norm(f"{prefix}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{prefix}_relu1")(y)
    y = b.conv2d(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv2")(y)
    y = batch_norm(f"{prefix}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = b.conv2d(filters, 1, strides=stride, use_bias=False,
                     name=f"{prefix}_shortcut_conv")(x)
        x = batch_norm(f"{prefix}_shortcut_bn")(x)
    y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return keras.layers.Activation("relu", name=f"{prefix}_relu2")(y)


def _cifar_resnet(depth, family, input_shape, num_classes, kernel_initializer, width,
                  name, layer_kw):
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2, got {depth}")
    blocks = (depth - 2) // 6
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)
    x = b.conv2d(width, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = batch_norm("bn1")(x)
    x = keras.layers.Activation("relu", name="relu1")(x)
    for stage in range(3):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _block(x, b, width * 2 ** stage, stride, f"stage{stage + 1}_block{block + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = dense_head(x, b, (), num_classes)
    return keras.Model(inputs, outputs, name=name)


def resnet20(family="masked", input_shape=(32, 32, 3), num_classes=10,
             kernel_initializer="he_normal", width=16, name="resnet20", **layer_kw):
    """ResNet-20: 272,474 trainable parameters (paper: 0.27M)."""
    return _cifar_resnet(20, family, input_shape, num_classes, kernel_initializer, width,
                         name, layer_kw)


def resnet56(family="masked", input_shape=(32, 32, 3), num_classes=10,
             kernel_initializer="he_normal", width=16, name="resnet56", **layer_kw):
    """ResNet-56: 855,770 trainable parameters (paper: 0.85M)."""
    return _cifar_resnet(56, family, input_shape, num_classes, kernel_initializer, width,
                         name, layer_kw)
