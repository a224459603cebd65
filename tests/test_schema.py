"""tflth.schema: what the runners write into a run folder is what `tflth summarize` reads back,
named in one module."""
import os

import pytest

from tflth import io, schema
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.lottery import branches, paths
from tflth.lottery import runner as lottery
from tflth.lottery.hparams import LotteryHparams, PruningHparams
from tflth.summary import plots, read, sparse
from tflth.trainer import runner as trainer
from tflth.trainer.hparams import ModelHparams, SparsityHparams, TrainerHparams

DATA, TRAINING = DatasetHparams(batch_size=20, validation_size=40), TrainingHparams(iterations=20, eval_every=10)


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory, digits_dir):
    hparams = TrainerHparams(DATA, ModelHparams(), TRAINING, SparsityHparams(strength=50.0))
    return trainer.run(hparams, root=str(tmp_path_factory.mktemp("runs")), data_dir=digits_dir, verbose=False)


@pytest.fixture(scope="module")
def lottery_run(tmp_path_factory, digits_dir):
    hparams = LotteryHparams(DATA, training=TRAINING, pruning=PruningHparams(rewind_iteration=10))
    return lottery.run(hparams, levels=1, controls=("reinit",), root=str(tmp_path_factory.mktemp("runs")),
                       data_dir=digits_dir, verbose=False)


def test_the_sparse_runner_writes_the_keys_the_schema_names(sparse_run):
    assert os.path.basename(sparse_run).startswith(f"{schema.SPARSE}_")
    metrics = io.read_json(os.path.join(sparse_run, schema.sparse_metrics(0)))
    assert set(metrics) == schema.SPARSE_KEYS
    assert [set(row) for row in metrics["rows"]] == [set(schema.ROW)] * 3
    assert read.run_kind(sparse_run) == schema.SPARSE
    variants, pending = sparse.aggregate_sparse([sparse_run])
    assert pending == [] and variants[0]["seeds"] == [0]
    assert variants[0]["final_test_error"]["mean"] == pytest.approx(100.0 * (1.0 - metrics["final_test_acc"]))


def test_the_lottery_runner_writes_the_keys_the_schema_names(lottery_run):
    assert os.path.basename(lottery_run).startswith(f"{schema.LOTTERY}_")
    for level, branch in ((0, "main"), (1, "main"), (1, "reinit")):
        assert set(io.read_json(os.path.join(lottery_run, schema.lottery_metrics(0, level, branch)))) == \
            schema.LOTTERY_KEYS, (level, branch)
    pretrain = paths.metrics(paths.pretrain_dir(paths.replicate_dir(lottery_run, 0)))
    assert set(io.read_json(pretrain)) == schema.PRETRAIN_KEYS
    records = read.collect(lottery_run)
    assert [(r["level"], r["branch"], r["seed"]) for r in records] == [(0, "main", 0), (1, "main", 0), (1, "reinit", 0)]
    assert read.run_kind(lottery_run) == schema.LOTTERY


def test_the_hparams_sections_tell_the_kinds_apart():
    lottery_sections, sparse_sections = set(LotteryHparams().to_dict()), set(TrainerHparams().to_dict())
    assert schema.SECTION[schema.LOTTERY] in lottery_sections - sparse_sections
    assert schema.SECTION[schema.SPARSE] in sparse_sections - lottery_sections


def test_summarize_and_the_lottery_share_one_branches_tuple(monkeypatch):
    assert paths.BRANCHES is schema.BRANCHES and branches.CONTROLS is schema.CONTROLS
    assert tuple(branches.STARTS) == schema.BRANCHES  # every branch the runner can start, in the schema's order
    assert set(plots.STYLE) == set(schema.BRANCHES)
    monkeypatch.setattr(schema, "BRANCHES", ("continue", "main"))  # summarize orders by the schema's, no copy
    assert sorted(["main", "other", "continue"], key=read.branch_key) == ["continue", "main", "other"]


def test_numbered_folders():
    assert schema.number_of(schema.SEED, "seed_12") == 12 and schema.number_of(schema.LEVEL, "level_0") == 0
    assert [schema.number_of(schema.SEED, name) for name in ("seed_", "seed_x", "seed_1.tmp", "myseed_1")] == [None] * 4
    assert schema.lottery_metrics(3, 1, "main") == os.path.join("replicate_3", "level_1", "main", "metrics.json")
    assert schema.sparse_metrics() == os.path.join("seed_*", "metrics.json")
