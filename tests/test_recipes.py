"""Every flagfile parses into valid hparams, and each CIFAR recipe trains a few steps on tiny data."""
import dataclasses
import glob
import os

import numpy as np
import pytest
from absl import flags

from tflth.hparams import from_flags
from tflth import engine
from tflth.lottery import cli, paths, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILES = sorted(glob.glob(os.path.join(REPO, "recipes", "flags", "*.cfg")))


def _parse(flagfile):
    values = flags.FlagValues()
    cli.define_run_flags(values)
    values(["recipe", f"--flagfile={flagfile}"])
    return cli.read_hparams(values), values


def test_there_are_flagfiles():
    names = {os.path.basename(f) for f in FLAGFILES}
    assert {"mnist_lth.cfg", "mnist_lth_quick.cfg", "cifar10_conv2.cfg", "cifar10_conv4.cfg",
            "cifar10_conv6.cfg", "cifar10_vgg19.cfg", "cifar10_resnet20.cfg"} <= names


def test_mnist_flagfile_is_the_papers_setup():
    hparams, values = _parse(os.path.join(REPO, "recipes", "flags", "mnist_lth.cfg"))
    assert (hparams.model.model, hparams.dataset.batch_size, hparams.training.lr,
            hparams.training.iterations) == ("lenet_300_100", 60, 0.0012, 50000)
    assert hparams.pruning.rates == {"dense": 0.2, "output": 0.1}
    assert values.levels == 15


def _tiny_data(shape, n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *shape)).astype(np.uint8)
    y = rng.integers(0, 10, n).astype(np.int32)
    return {"x": x, "y": y, "validation": engine.eval_stream(x[:8], y[:8]),
            "test": engine.eval_stream(x[8:16], y[8:16])}


@pytest.mark.parametrize("flagfile", [f for f in FLAGFILES if "cifar10" in f], ids=os.path.basename)
def test_cifar_recipe_smoke(flagfile, tmp_path):
    hparams, _ = _parse(flagfile)
    hparams = dataclasses.replace(
        hparams,
        dataset=dataclasses.replace(hparams.dataset, batch_size=4),
        training=dataclasses.replace(hparams.training, iterations=4, eval_every=2,
                                     jit_compile=False,  # XLA takes a minute on VGG-19 here; MNIST tests it
                                     lr_drops="3" if hparams.training.lr_drops else ""),
        pruning=dataclasses.replace(hparams.pruning, rewind_iteration=min(hparams.pruning.rewind_iteration, 2)))
    run = runner.run(hparams, levels=1, controls=("reinit",), root=str(tmp_path), data=_tiny_data((32, 32, 3)),
                     verbose=False)
    replicate = paths.replicate_dir(run, 0)
    for branch in ("main", "reinit"):
        assert os.path.exists(paths.metrics(paths.branch_dir(replicate, 1, branch)))


SPARSE_FLAGFILES = [f for f in FLAGFILES if os.path.basename(f).startswith((
    "mnist_l0", "mnist_penalties", "mnist_bayes", "mnist_snip", "mnist_gradual", "mnist_rigl"))]
ABLATION_FLAGFILES = [f for f in FLAGFILES if os.path.basename(f).startswith("mnist_ablation")]
TUNE_FLAGFILES = [f for f in FLAGFILES if os.path.basename(f).startswith("mnist_tune")]


def test_every_flagfile_parses_with_its_recipe(tmp_path):
    from tflth.trainer import cli as trainer_cli
    assert {"mnist_l0_neuron.cfg", "mnist_l0_weight.cfg", "mnist_l0_lenet5.cfg", "mnist_penalties.cfg",
            "mnist_bayes_svd.cfg", "mnist_bayes_horseshoe.cfg", "mnist_bayes_snr.cfg",
            "mnist_bayes_lenet5.cfg", "mnist_bayes_spike_slab.cfg"} <= {os.path.basename(f) for f in SPARSE_FLAGFILES}
    from tflth.ablation import cli as ablation_cli
    from tflth.ablation import runner as ablation_runner
    from tflth.tuning import cli as tune_cli
    from tflth.tuning import search
    assert ABLATION_FLAGFILES and TUNE_FLAGFILES
    for flagfile in FLAGFILES:
        if flagfile in TUNE_FLAGFILES:
            lottery = "lottery" in os.path.basename(flagfile)
            values = flags.FlagValues()
            tune_cli.define_run_flags(values, lottery=lottery)
            values(["recipe", f"--flagfile={flagfile}"])
            hparams = tune_cli.read_hparams(values, lottery)
            assert hparams.space
            search.check(hparams, str(tmp_path))  # the base run and every corner of the space are valid
        elif flagfile in ABLATION_FLAGFILES:
            values = flags.FlagValues()
            ablation_cli.define_run_flags(values)
            values(["recipe", f"--flagfile={flagfile}"])
            study = ablation_runner.Study(from_flags(engine.DatasetHparams, values), values.model,
                                          from_flags(engine.TrainingHparams, values))
            ablation_runner.check(study, values.methods.split(","), [float(k) for k in values.keep.split(",")])
        elif flagfile in SPARSE_FLAGFILES:
            values = flags.FlagValues()
            trainer_cli.define_run_flags(values)
            values(["recipe", f"--flagfile={flagfile}"])
            assert trainer_cli.variants(values)
        else:
            _parse(flagfile)


@pytest.mark.parametrize("flagfile", SPARSE_FLAGFILES, ids=os.path.basename)
def test_sparse_recipe_smoke(flagfile, tmp_path):
    from tflth.trainer import cli as trainer_cli
    from tflth.trainer import runner as trainer_runner
    values = flags.FlagValues()
    trainer_cli.define_run_flags(values)
    values(["recipe", f"--flagfile={flagfile}", "--iterations=4", "--eval_every=2", "--batch_size=4",
            "--lr_linear_decay=0", "--lr_drops=", "--prune_start=0", "--prune_end=3", "--prune_every=2", "--mc_samples=2",
            "--dst_every=1"])
    for hparams in trainer_cli.variants(values)[:3]:  # the penalty list: its first three are enough here
        run = trainer_runner.run(hparams, root=str(tmp_path), data=_tiny_data((28, 28, 1)), verbose=False)
        assert os.path.exists(os.path.join(trainer_runner.seed_dir(run, 0), "metrics.json"))
