"""What a run folder holds, named once: the runners write it, and tflth.summary and the
ablation study read it back.

    <root>/lottery_<hash>/hparams.json, flags.txt       tflth.lottery (paths.py names its other files)
      replicate_<seed>/level_<L>/<branch>/metrics.json
      replicate_<seed>/pretrain/metrics.json             iterations 0..k, the rewind point
    <root>/sparse_<hash>/hparams.json, flags.txt        tflth.trainer
      seed_<s>/metrics.json

<hash> is `tflth.hparams.digest` of the hyperparameters. A metrics.json is written last: its
training is done. Files written before a key existed lack it, so a reader requires only REQUIRED
and takes every other key as possibly absent.
"""
import os

LOTTERY, SPARSE = "lottery", "sparse"  # the kinds of run folder, named <kind>_<hash>
SECTION = {LOTTERY: "pruning", SPARSE: "sparsity"}  # the hparams.json section only that kind has
HPARAMS, FLAGS, METRICS = "hparams.json", "flags.txt", "metrics.json"
REPLICATE, LEVEL, SEED = "replicate_{}", "level_{}", "seed_{}"  # folders numbered by seed or level

CONTROLS = ("reinit", "random_prune", "continue")
"""The lottery's control branches, trained beside each level's winning ticket."""
BRANCHES = ("main", *CONTROLS)  # a lottery level's trainings: the winning ticket, then its controls


def number_of(template, name):
    """n for a folder named `template`.format(n), n written in decimal digits; None for any other name."""
    prefix = template.format("")
    digits = name[len(prefix):]
    return int(digits) if name.startswith(prefix) and digits.isdecimal() else None


def lottery_metrics(seed="*", level="*", branch="*"):
    """A lottery training's metrics.json, relative to its run folder (by default a glob pattern)."""
    return os.path.join(REPLICATE.format(seed), LEVEL.format(level), branch, METRICS)


def sparse_metrics(seed="*"):
    """A sparse training's metrics.json, relative to its run folder (by default a glob pattern)."""
    return os.path.join(SEED.format(seed), METRICS)


# metrics.json, one per finished training
REQUIRED = ("weights_remaining",)  # % of the prunable weights non-zero after training
ACCURACY = ("early_stop_step", "early_stop_test_acc", "final_test_acc")  # tflth.engine.summarize_rows
FLOPS = ("flops_sparse", "flops_dense")  # training FLOPs counting the masks' weights / as executed (tflth.runs)
COST = ("seconds", "cpu_seconds", *FLOPS)  # wall and CPU seconds (tflth.engine.Clock.spent), FLOPs
OPTIONAL = (*ACCURACY, *COST)  # numbers, or null where unknown
METHOD = ("penalty", "strength", "prior", "estimator", "prune_score")  # what a sparse training was
# "rows": one per evaluation (tflth.engine.train); test values are null where the test set was not read
ROW = ("step", "train_loss", "val_loss", "val_acc", "test_loss", "test_acc", *FLOPS)

# Every key each runner writes (tests/test_schema.py holds the runners to them)
TRAINING = ("seed", "rows", *REQUIRED, *ACCURACY, "early_stop_val_loss", *COST,
            "test_correct",  # correct or not, per test example in order: tflth.io.pack_bits' {"n", "bits"}
            "weights_sha256",  # of final.weights.h5, checked when it is loaded
            "versions", "compiled", "time_split")  # tflth.runs.versions, engine.compiled_with, engine.train's timing
LOTTERY_KEYS = frozenset(TRAINING) | {"level", "branch", "sparsity", "mask_overlap_prev", "movement"}
SPARSE_KEYS = frozenset(TRAINING) | {*METHOD, "architecture", "mask_weights_remaining", "calibration", "pruned"}
PRETRAIN_KEYS = frozenset(("seed", "rows", *COST))  # replicate_<seed>/pretrain/metrics.json: iterations 0..k
