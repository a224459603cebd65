"""Model zoo: exact sizes, every family builds the same architecture, logits out;
VGG/ResNet and their flagfiles as open_lth builds, initialises, prunes and trains them."""
import os

import keras
import numpy as np
import pytest
from absl import flags

from tflth.layers import MaskedConv2D, MaskedDense
from tflth.lottery import cli
from tflth.models import MODELS, get_model
from tflth.pruning import get_masks, prune

FLAGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "flags")

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


@pytest.mark.parametrize("name, open_lth_count", [("vgg16", 14_728_266), ("vgg19", 20_040_522)])
def test_vgg_conv_bias_gives_open_lths_count(name, open_lth_count):
    """open_lth's convs keep PyTorch's bias (one per filter); ours drop it by default."""
    assert not get_model(name, family="plain").get_layer("conv1").use_bias
    with_bias = get_model(name, family="plain", conv_bias=True)
    assert with_bias.get_layer("conv1").use_bias
    assert _count(with_bias.trainable_weights) == open_lth_count == SIZES[name][0] + sum(
        l.filters for l in _kernel_layers(with_bias) if isinstance(l, keras.layers.Conv2D))


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
    with pytest.raises(ValueError, match="batchnorm_init='ones' is unknown"):
        get_model("vgg16", batchnorm_init="ones")


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


# --- as open_lth (facebookresearch/open_lth): models/, pruning/, training/ ------------------

OPEN_LTH_MODELS = ("vgg16", "vgg19", "resnet20", "resnet56")


def _batch_norms(model):
    return [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", OPEN_LTH_MODELS)
def test_batchnorm_init_is_open_lths_uniform(built, name):
    """models/bn_initializers.py "uniform", the default: gamma ~ U[0, 1), beta = 0."""
    bns = _batch_norms(built(name, "plain"))
    gammas = np.concatenate([np.asarray(bn.gamma) for bn in bns])
    assert np.all((gammas >= 0) & (gammas < 1))
    assert abs(gammas.mean() - 0.5) < 0.05 and abs(gammas.std() - 12 ** -0.5) < 0.05
    assert all(np.all(np.asarray(bn.beta) == 0) for bn in bns)
    first, second = (np.asarray(bn.gamma) for bn in bns[:2])  # same width: distinct draws
    assert first.shape == second.shape and not np.array_equal(first, second)


def test_reinitialised_clone_draws_new_gammas_and_kernels():
    """The re-init control (tflth.pruning.fresh_weights) clones the model from its config."""
    model = get_model("resnet20", family="plain")
    clone = keras.models.clone_model(model)
    for name in ("bn1", "conv1"):
        old, new = (np.asarray(m.get_layer(name).weights[0]) for m in (model, clone))
        assert not np.array_equal(old, new), name
    gamma = np.asarray(clone.get_layer("bn1").gamma)
    assert np.all((gamma >= 0) & (gamma < 1))


def test_batchnorm_init_fixed_and_momentum_as_pytorch():
    model = get_model("resnet20", family="plain", batchnorm_init="fixed")
    for bn in _batch_norms(model):
        assert np.all(np.asarray(bn.gamma) == 1) and np.all(np.asarray(bn.beta) == 0)
        assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


@pytest.mark.parametrize("name", OPEN_LTH_MODELS)
def test_kernels_are_untruncated_kaiming_normal(built, name):
    """models/initializers.py kaiming_normal: N(0, 2 / fan_in) for every conv and the head,
    without the truncation of Keras' "he_normal" (nothing beyond ~2.3 sigma)."""
    z = []
    for layer in _kernel_layers(built(name, "plain")):
        kernel = np.asarray(layer.kernel)
        z.append(kernel.reshape(-1) / np.sqrt(2.0 / np.prod(kernel.shape[:-1])))
    z = np.concatenate(z)
    assert abs(z.std() - 1) < 0.02
    assert 0.008 < np.mean(np.abs(z) > 2.5) < 0.017  # normal: 1.24%


def test_resnet_downsampling_conv_samples_the_shortcuts_grid():
    """PyTorch's padding=1 centres a stride-2 3x3 conv on the even pixels, where the 1x1
    shortcut samples; Keras' "same" would centre it on the odd ones."""
    model = get_model("resnet20", family="plain")
    conv, shortcut = model.get_layer("stage2_block1_conv1"), model.get_layer("stage2_block1_shortcut_conv")
    delta = np.zeros(conv.kernel.shape, "float32")  # conv: pick the centre pixel, channel c -> c
    identity = np.zeros(shortcut.kernel.shape, "float32")
    for c in range(16):
        delta[1, 1, c, c] = identity[0, 0, c, c] = 1.0
    conv.kernel.assign(delta)
    shortcut.kernel.assign(identity)
    block_input = model.get_layer("stage1_block3_relu2").output
    probe = keras.Model(model.input, [block_input, conv.output, shortcut.output])
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    features, by_conv, by_shortcut = (np.asarray(t) for t in probe(x))
    assert by_conv.shape == by_shortcut.shape == (2, 16, 16, 32)
    np.testing.assert_allclose(by_conv, by_shortcut, atol=1e-6)
    np.testing.assert_allclose(by_conv[..., :16], features[:, ::2, ::2, :], atol=1e-6)


def _flagfile(name):
    values = flags.FlagValues()
    cli.define_run_flags(values)
    values(["recipe", f"--flagfile={os.path.join(FLAGS_DIR, name)}"])
    return cli.read_hparams(values)


@pytest.mark.parametrize("flagfile", ["cifar10_vgg19.cfg", "cifar10_resnet20.cfg"])
def test_cifar_flagfiles_train_as_open_lth(flagfile):
    """default_hparams of models/cifar_vgg.py and cifar_resnet.py, in iterations
    (160ep at ceil(50,000 / 128) = 391 iterations per epoch); PyTorch's coupled weight decay."""
    h = _flagfile(flagfile)
    assert (h.dataset.batch_size, h.dataset.augment) == (128, True)
    t = h.training
    assert (t.optimizer, t.lr, t.momentum, t.warmup) == ("sgd", 0.1, 0.9, 0)
    assert (t.l2, t.weight_decay) == (1e-4, 0.0)
    assert (t.iterations, t.drops, t.lr_gamma) == (160 * 391, (80 * 391, 120 * 391), 0.1)
    p = h.pruning
    assert (p.score, p.scope, p.fraction, p.rates) == ("magnitude", "global", 0.2, None)


@pytest.mark.parametrize("flagfile, unpruned", [("cifar10_vgg19.cfg", {"output"}),
                                                ("cifar10_resnet20.cfg", set())])
def test_cifar_flagfiles_prune_what_open_lth_prunes(flagfile, unpruned):
    """open_lth prunes every Conv2d and Linear weight (models/base.py prunable_layer_names),
    ResNet shortcuts included, except pruning_layers_to_ignore: 'fc.weight' for VGG."""
    h = _flagfile(flagfile)
    keras.utils.set_random_seed(0)
    model = get_model(h.model.model, family="masked")
    prune(model, h.pruning.fraction, scope=h.pruning.scope, exclude=h.pruning.excluded)
    masks = get_masks(model)
    assert set(masks) == {l.name for l in _kernel_layers(model)}
    dense = {name for name, mask in masks.items() if mask.all()}
    assert dense == unpruned
    if h.model.model.startswith("resnet"):
        assert {"stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"} <= set(masks) - dense
