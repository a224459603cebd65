"""Model zoo: exact sizes, every family builds the same architecture, logits out."""
import keras
import numpy as np
import pytest

from tflth.layers import MaskedConv2D, MaskedDense
from tflth.models import MODELS, get_model

# name: (trainable parameters, weights in convolution kernels, the paper's rounded total).
# BatchNorm moving statistics (and masks) are non-trainable and not counted.
SIZES = {
    "lenet_300_100": (266_610, 0, "266K"),
    "lenet5": (431_080, 25_500, "431K"),
    "conv2": (4_301_642, 38_592, "4.3M"),
    "conv4": (2_425_930, 259_776, "2.4M"),
    # Frankle & Carbin print 1.7M, yet 1.1M conv weights (matched) plus a
    # 4096x256 fc1 cannot total 1.7M; see conv6's docstring.
    "conv6": (2_262_602, 1_144_512, "2.3M"),
    "vgg16": (14_724_042, 14_710_464, "14.7M"),
    "vgg19": (20_035_018, 20_018_880, "20.0M"),
    "resnet20": (272_474, 270_256, "272K"),
    "resnet56": (855_770, 850_864, "856K"),
}
PAPER_CONV_WEIGHTS = {"conv2": "38K", "conv4": "260K", "conv6": "1.1M", "resnet20": "270K"}


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _agrees(n, paper):
    """n matches a paper's "4.3M" / "272K" to its last printed digit.

    The papers round some counts (259,776 -> "260K") and truncate others
    (38,592 -> "38K", 266,610 -> "266K"), so either is accepted.
    """
    scale = {"K": 1e3, "M": 1e6}[paper[-1]]
    unit = 10.0 ** -len(paper[:-1].partition(".")[2])
    return abs(n / scale - float(paper[:-1])) < unit


def _kernel_layers(model):
    return [l for l in model.layers if isinstance(l, (keras.layers.Dense, keras.layers.Conv2D))]


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name, family):
        if (name, family) not in cache:
            cache[name, family] = get_model(name, family=family)
        return cache[name, family]

    return get


def test_every_model_has_a_size():
    assert set(SIZES) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exact_parameter_counts(built, name):
    model = built(name, "plain")
    trainable, conv_weights, paper = SIZES[name]
    assert _count(model.trainable_weights) == trainable
    assert _agrees(trainable, paper)
    kernels = [l.kernel for l in _kernel_layers(model) if isinstance(l, keras.layers.Conv2D)]
    assert _count(kernels) == conv_weights
    if name in PAPER_CONV_WEIGHTS:
        assert _agrees(conv_weights, PAPER_CONV_WEIGHTS[name])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_masked_family_matches_plain(built, name):
    plain, masked = built(name, "plain"), built(name, "masked")
    assert _count(masked.trainable_weights) == _count(plain.trainable_weights)
    assert masked.output.shape == plain.output.shape == (None, 10)
    plain_layers, masked_layers = _kernel_layers(plain), _kernel_layers(masked)
    assert [l.name for l in masked_layers] == [l.name for l in plain_layers]
    for layer in masked_layers:
        expected = MaskedDense if isinstance(layer, keras.layers.Dense) else MaskedConv2D
        assert isinstance(layer, expected), layer.name
        assert layer.mask.shape == layer.kernel.shape
    assert not any(isinstance(l, (MaskedDense, MaskedConv2D)) for l in plain.layers)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_last_layer_is_dense_output_of_logits(built, name):
    model = built(name, "masked")
    output = model.get_layer("output")
    assert model.layers[-1] is output
    assert isinstance(output, keras.layers.Dense)
    assert output.activation is keras.activations.linear


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_pass_gives_logits_per_class(built, name):
    model = built(name, "masked")
    x = np.random.default_rng(0).normal(size=(2, *model.input.shape[1:])).astype("float32")
    y = model(x, training=False)
    assert tuple(y.shape) == (2, 10)
    assert np.all(np.isfinite(np.asarray(y)))


@pytest.mark.parametrize("name, input_shape", [("lenet_300_100", (32, 32, 3)),
                                               ("conv2", (28, 28, 1)),
                                               ("resnet20", (28, 28, 1))])
def test_input_shape_and_num_classes(name, input_shape):
    model = get_model(name, family="plain", input_shape=input_shape, num_classes=100)
    assert model.input.shape == (None, *input_shape)
    assert model.output.shape == (None, 100)


def test_kernel_initializer_and_layer_kwargs_reach_every_family_layer():
    model = get_model("lenet5", family="masked", kernel_initializer="zeros",
                      kernel_regularizer="l2")
    for layer in _kernel_layers(model):
        assert np.all(np.asarray(layer.kernel) == 0)
        assert layer.kernel_regularizer is not None
    assert len(model.losses) == len(_kernel_layers(model))


def test_vgg_conv_bias_choice():
    assert not get_model("vgg16", family="plain").get_layer("conv1").use_bias
    with_bias = get_model("vgg16", family="plain", conv_bias=True)
    assert with_bias.get_layer("conv1").use_bias


def test_get_model_rejects_unknown_name():
    with pytest.raises(ValueError, match="resnet18") as info:
        get_model("resnet18")
    assert "resnet20" in str(info.value)


def test_bad_num_classes_and_depth_raise():
    with pytest.raises(ValueError, match="num_classes"):
        get_model("conv2", num_classes=0)
    from tflth.models.resnet import _cifar_resnet
    with pytest.raises(ValueError, match="6n\\+2"):
        _cifar_resnet(21, "plain", (32, 32, 3), 10, "he_normal", 16, "r", {})


def test_masked_model_trains_a_step_and_round_trips(tmp_path):
    model = get_model("resnet20", family="masked")
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(4) % 10, epochs=1, verbose=0)
    path = str(tmp_path / "resnet20.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
