"""Pieces every model function shares: family layers, plans, the classifier head."""
import keras

from tflth.layers.family import get_family

# open_lth trains in PyTorch: BatchNorm momentum 0.1 (keras: 1 - 0.1) and eps 1e-5.
# Keras's own defaults (0.99, 1e-3) would change the replication, so we pin these.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class Builder:
    """Builds the family's Dense/Conv2D layers with the arguments one model shares.

    `layer_kw` (e.g. `kernel_regularizer`, or a later family's prior) goes to every
    Dense and Conv2D; arguments given to one layer override it.
    """

    def __init__(self, family, kernel_initializer, layer_kw):
        self.family = get_family(family)
        self.shared = dict(kernel_initializer=kernel_initializer, **layer_kw)

    def dense(self, units, name, **kw):
        return self.family.dense(units=units, name=name, **{**self.shared, **kw})

    def conv2d(self, filters, kernel_size, name, **kw):
        return self.family.conv2d(
            filters=filters, kernel_size=kernel_size, name=name, **{**self.shared, **kw})


def model_input(input_shape, num_classes):
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return keras.Input(shape=tuple(input_shape), name="input")


def batch_norm(name):
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def apply_plan(x, plan, conv_block):
    """Runs a plan such as (64, 64, "M", 128): ints call `conv_block(x, filters, i)`
    with i counting convs from 1, "M" is a 2x2 max-pool."""
    n_conv = n_pool = 0
    for item in plan:
        if item == "M":
            n_pool += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{n_pool}")(x)
        else:
            n_conv += 1
            x = conv_block(x, item, n_conv)
    return x


def dense_head(x, builder, hidden, num_classes):
    """Hidden relu layers fc1, fc2, ... then the logits layer "output"."""
    for i, units in enumerate(hidden, start=1):
        x = builder.dense(units, name=f"fc{i}", activation="relu")(x)
    return builder.dense(num_classes, name="output")(x)
