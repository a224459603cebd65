import dataclasses

import pytest
from absl import flags

from tflth.hparams import define_flags, digest, from_flags, to_flagfile
from tflth.lottery import paths
from tflth.lottery.hparams import (SECTIONS, DatasetHparams, LotteryHparams, ModelHparams, PruningHparams,
                                   TrainingHparams)


def test_pinned_hashes():
    # A renamed field or changed default must change these loudly: old run folders
    # would otherwise be orphaned (or worse, reused for different settings).
    assert paths.run_dir("r", LotteryHparams()) == "r/lottery_ee9bd9ba79"
    quick = LotteryHparams(training=TrainingHparams(iterations=3000, eval_every=500))
    assert paths.run_dir("r", quick) == "r/lottery_6ea9d90043"
    conv = LotteryHparams(DatasetHparams(dataset="cifar10"), ModelHparams(model="conv2"),
                          TrainingHparams(lr=2e-4, iterations=20000), PruningHparams(fraction_conv=0.1))
    assert paths.run_dir("r", conv) == "r/lottery_2f1354fd00"


def test_hash_depends_only_on_non_default_values():
    a = LotteryHparams(training=TrainingHparams(lr=1.2e-3))  # the default, spelled out
    assert digest(a.sections) == digest(LotteryHparams().sections)
    b = LotteryHparams(pruning=PruningHparams(rewind_iteration=100))
    assert digest(b.sections) != digest(LotteryHparams().sections)


def test_field_names_are_unique_flag_names():
    names = [f.name for cls in SECTIONS for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names))


def test_flags_round_trip_through_a_flagfile(tmp_path):
    values = flags.FlagValues()
    for cls in SECTIONS:
        define_flags(cls, values)
    hparams = LotteryHparams(DatasetHparams(batch_size=32), ModelHparams(model="lenet5"),
                             TrainingHparams(optimizer="sgd", momentum=0.9, lr_drops="10,20", iterations=30, eval_every=10),
                             PruningHparams(scope="global", fraction_output=-1.0, rewind_iteration=5))
    flagfile = tmp_path / "f.cfg"
    flagfile.write_text("# a comment line\n" + to_flagfile(hparams.sections))
    values(["prog", f"--flagfile={flagfile}"])
    assert LotteryHparams(*(from_flags(cls, values) for cls in SECTIONS)) == hparams


def test_dict_round_trip():
    hparams = LotteryHparams(training=TrainingHparams(iterations=7, eval_every=7))
    assert LotteryHparams.from_dict(hparams.to_dict()) == hparams


@pytest.mark.parametrize("build,flag", [
    (lambda: DatasetHparams(dataset="mnits"), "--dataset"),
    (lambda: DatasetHparams(batch_size=0), "--batch_size"),
    (lambda: ModelHparams(model="lenet"), "--model"),
    (lambda: TrainingHparams(optimizer="rmsprop"), "--optimizer"),
    (lambda: TrainingHparams(iterations=0), "--iterations"),
    (lambda: TrainingHparams(eval_every=0), "--eval_every"),
    (lambda: TrainingHparams(lr_drops="10,x"), "--lr_drops"),
    (lambda: TrainingHparams(iterations=100, eval_every=10, lr_drops="50,20"), "--lr_drops"),
    (lambda: PruningHparams(fraction=1.0), "--fraction"),
    (lambda: PruningHparams(fraction_output=1.5), "--fraction_output"),
    (lambda: PruningHparams(score="weight"), "--score"),
    (lambda: PruningHparams(scope="global"), "--scope"),
    (lambda: PruningHparams(rewind_iteration=-1), "--rewind_iteration"),
    (lambda: LotteryHparams(training=TrainingHparams(iterations=100, eval_every=10),
                            pruning=PruningHparams(rewind_iteration=100)), "--rewind_iteration"),
])
def test_bad_values_name_their_flag(build, flag):
    with pytest.raises(ValueError, match=flag):
        build()


def test_rates_by_role():
    assert PruningHparams().rates == {"dense": 0.2, "output": 0.1}
    assert PruningHparams(fraction_conv=0.15).rates == {"dense": 0.2, "conv": 0.15, "output": 0.1}
    assert PruningHparams(scope="global", fraction_output=-1.0).rates is None
