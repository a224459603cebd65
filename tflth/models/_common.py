"""Pieces every model function shares: family layers, plans, the classifier head."""
import keras

from tflth.arguments import is_integer
from tflth.layers.family import get_family

# open_lth trains in PyTorch: BatchNorm momentum 0.1 (keras: 1 - 0.1) and eps 1e-5.
# Keras's own defaults (0.99, 1e-3) would change the replication, so we pin these.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

# open_lth's default model_init, "kaiming_normal" (models/initializers.py), is PyTorch's
# kaiming_normal_: N(0, 2 / fan_in), not truncated. Keras' "he_normal" cuts the tails
# (nothing beyond ~2.3 standard deviations), and the largest initial weights are the ones
# magnitude pruning tends to keep. A config, not an instance, so each layer draws its own.
KAIMING_NORMAL = {"class_name": "VarianceScaling",
                  "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"}}

# open_lth's BatchNorm initialisers (models/bn_initializers.py) by the names of its
# --batchnorm_init flag: "uniform" (its default for VGG and ResNet: gamma ~ U[0, 1),
# beta = 0) and "fixed" (gamma = 1, beta = 0: PyTorch's and Keras' own default).
BATCHNORM_INITS = ("uniform", "fixed")


class Builder:
    """Builds the family's Dense/Conv2D layers with the arguments one model shares.

    `layer_kw` (e.g. `kernel_regularizer`, or a family's arguments) goes to every Dense and
    Conv2D; `per_layer={layer name: {argument: value}}` overrides it for named layers (the L0
    paper's input layer starts with other gates than the rest), and wins over the model's own.
    """

    def __init__(self, family, kernel_initializer, layer_kw):
        self.family = get_family(family)
        self.per_layer = dict(layer_kw.pop("per_layer", None) or {})
        self.shared = dict(kernel_initializer=kernel_initializer, **layer_kw)

    def _kw(self, name, kw):
        return {**self.shared, **kw, **self.per_layer.get(name, {})}

    def dense(self, units, name, **kw):
        return self.family.dense(units=units, name=name, **self._kw(name, kw))

    def conv2d(self, filters, kernel_size, name, **kw):
        return self.family.conv2d(filters=filters, kernel_size=kernel_size, name=name, **self._kw(name, kw))

    def model(self, inputs, outputs, name):
        """The keras.Model, once `per_layer` is known to name only layers it has."""
        model = keras.Model(inputs, outputs, name=name)
        names = [layer.name for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
        unknown = sorted(set(self.per_layer) - set(names))
        if unknown:
            raise ValueError(f"per_layer names {unknown}, not Dense/Conv2D layers of {name}; allowed: {names}")
        return model


def model_input(input_shape, num_classes):
    if not is_integer(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return keras.Input(shape=tuple(input_shape), name="input")


def check_batchnorm_init(batchnorm_init):
    if batchnorm_init not in BATCHNORM_INITS:
        raise ValueError(f"batchnorm_init={batchnorm_init!r} is unknown; allowed: {list(BATCHNORM_INITS)}")


def batch_norm(name, batchnorm_init):
    # A new RandomUniform per layer: one unseeded instance would give every layer the same gammas.
    gamma = keras.initializers.RandomUniform(0.0, 1.0) if batchnorm_init == "uniform" else "ones"
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, gamma_initializer=gamma,
        beta_initializer="zeros", name=name)


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
