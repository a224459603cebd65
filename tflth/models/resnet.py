"""ResNets for CIFAR (He et al. 2016, section 4.2), as open_lth's cifar_resnet.

As open_lth's models/cifar_resnet.py: a 3x3 conv, three stages of (depth - 2) / 6 blocks
of width 16, 32, 64, global average pooling and one Linear head; convs without bias;
a 1x1 conv + BatchNorm shortcut where the shape changes; kaiming_normal kernels and
"uniform" BatchNorm gammas (its default_hparams). Every conv, the shortcuts included,
and the output layer are prunable, as open_lth's prunable_layer_names (models/base.py)
and its ResNet default_hparams (nothing in pruning_layers_to_ignore).
Deliberate difference: the output biases start at zero (Keras), where PyTorch draws
them from U(+-1/sqrt(64)) and open_lth's initialisers leave them so; 10 numbers, never pruned.
"""
import keras

from tflth.models._common import (KAIMING_NORMAL, Builder, batch_norm, check_batchnorm_init,
                                  dense_head, model_input)


def _conv3x3(x, b, filters, stride, name):
    """A 3x3 conv without bias, padded by one pixel on every side as PyTorch's padding=1.

    Keras' "same" at stride 2 pads only the bottom and right, so its windows would centre on
    the odd pixels while the 1x1 shortcut samples the even ones: the two branches of a
    downsampling block would add features one pixel apart. Explicit padding keeps them aligned.
    """
    if stride == 1:
        return b.conv2d(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return b.conv2d(filters, 3, strides=stride, padding="valid", use_bias=False, name=name)(x)


def _block(x, b, filters, stride, prefix, batchnorm_init):
    """conv-BN-relu-conv-BN, plus the shortcut, then relu.

    When the shape changes the shortcut is a 1x1 conv + BN projection, built by the
    family like every conv, so it is pruned too.
    """
    y = _conv3x3(x, b, filters, stride, f"{prefix}_conv1")
    y = batch_norm(f"{prefix}_bn1", batchnorm_init)(y)
    y = keras.layers.Activation("relu", name=f"{prefix}_relu1")(y)
    y = _conv3x3(y, b, filters, 1, f"{prefix}_conv2")
    y = batch_norm(f"{prefix}_bn2", batchnorm_init)(y)
    if stride != 1 or x.shape[-1] != filters:
        x = b.conv2d(filters, 1, strides=stride, use_bias=False,
                     name=f"{prefix}_shortcut_conv")(x)
        x = batch_norm(f"{prefix}_shortcut_bn", batchnorm_init)(x)
    y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return keras.layers.Activation("relu", name=f"{prefix}_relu2")(y)


def _cifar_resnet(depth, family, input_shape, num_classes, kernel_initializer, width,
                  name, layer_kw, batchnorm_init="uniform"):
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2, got {depth}")
    check_batchnorm_init(batchnorm_init)
    blocks = (depth - 2) // 6
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)
    x = _conv3x3(inputs, b, width, 1, "conv1")
    x = batch_norm("bn1", batchnorm_init)(x)
    x = keras.layers.Activation("relu", name="relu1")(x)
    for stage in range(3):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _block(x, b, width * 2 ** stage, stride, f"stage{stage + 1}_block{block + 1}",
                       batchnorm_init)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = dense_head(x, b, (), num_classes)
    return b.model(inputs, outputs, name)


def resnet20(family="masked", input_shape=(32, 32, 3), num_classes=10,
             kernel_initializer=KAIMING_NORMAL, width=16, batchnorm_init="uniform",
             name="resnet20", **layer_kw):
    """ResNet-20: 272,474 trainable parameters (paper: 0.27M; open_lth's count too)."""
    return _cifar_resnet(20, family, input_shape, num_classes, kernel_initializer, width,
                         name, layer_kw, batchnorm_init)


def resnet56(family="masked", input_shape=(32, 32, 3), num_classes=10,
             kernel_initializer=KAIMING_NORMAL, width=16, batchnorm_init="uniform",
             name="resnet56", **layer_kw):
    """ResNet-56: 855,770 trainable parameters (paper: 0.85M; open_lth's count too)."""
    return _cifar_resnet(56, family, input_shape, num_classes, kernel_initializer, width,
                         name, layer_kw, batchnorm_init)
