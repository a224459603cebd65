"""VGG for CIFAR, as open_lth's cifar_vgg (the lottery-ticket papers' VGG-16 and VGG-19)."""
import keras

from tflth.models._common import (KAIMING_NORMAL, Builder, apply_plan, batch_norm,
                                  check_batchnorm_init, dense_head, model_input)

_PLANS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512),
}


def _vgg(plan_name, family, input_shape, num_classes, kernel_initializer, batchnorm_init,
         conv_bias, name, layer_kw):
    """Each conv: 3x3 same -> BatchNorm -> relu; 2x2 max-pools; global average pool -> output.

    As open_lth's models/cifar_vgg.py: the same plans; AvgPool2d(2) on the final 2x2 map,
    i.e. a global average for CIFAR; one Linear(512, classes) head; kaiming_normal kernels
    and "uniform" BatchNorm gammas (its default_hparams). Deliberate differences:
    - Convs have no bias by default (open_lth keeps PyTorch's). The BatchNorm right after
      each conv subtracts the batch mean, so a conv bias gets no gradient from the loss and
      only decays under L2: it changes nothing but the count (+5,504 for VGG-19, +4,224 for
      VGG-16). `conv_bias=True` gives open_lth's exact parameter count.
    - Biases start at zero (Keras); PyTorch draws them from U(+-1/sqrt(fan_in)) and open_lth's
      initialisers leave them so. That leaves the output layer's biases (and conv biases,
      which BatchNorm cancels): 10 numbers, never pruned.
    - The output layer is prunable like every layer here; open_lth's default_hparams keep it
      dense (pruning_layers_to_ignore='fc.weight'): recipes pass --exclude=output.
    """
    check_batchnorm_init(batchnorm_init)
    b = Builder(family, kernel_initializer, layer_kw)
    inputs = model_input(input_shape, num_classes)

    def conv_bn_relu(x, filters, i):
        x = b.conv2d(filters, 3, name=f"conv{i}", padding="same", use_bias=conv_bias)(x)
        x = batch_norm(f"bn{i}", batchnorm_init)(x)
        return keras.layers.Activation("relu", name=f"relu{i}")(x)

    x = apply_plan(inputs, _PLANS[plan_name], conv_bn_relu)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = dense_head(x, b, (), num_classes)
    return b.model(inputs, outputs, name)


def vgg16(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer=KAIMING_NORMAL, conv_bias=False, batchnorm_init="uniform",
          name="vgg16", **layer_kw):
    """VGG-16 for CIFAR-10: 14,724,042 trainable parameters (open_lth: 14,728,266 with
    conv biases). See `_vgg` for how it follows open_lth's cifar_vgg_16."""
    return _vgg("vgg16", family, input_shape, num_classes, kernel_initializer, batchnorm_init,
                conv_bias, name, layer_kw)


def vgg19(family="masked", input_shape=(32, 32, 3), num_classes=10,
          kernel_initializer=KAIMING_NORMAL, conv_bias=False, batchnorm_init="uniform",
          name="vgg19", **layer_kw):
    """VGG-19 for CIFAR-10: 20,035,018 trainable parameters (paper: 20.0M; open_lth:
    20,040,522 with conv biases). See `_vgg` for how it follows open_lth's cifar_vgg_19."""
    return _vgg("vgg19", family, input_shape, num_classes, kernel_initializer, batchnorm_init,
                conv_bias, name, layer_kw)
