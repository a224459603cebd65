"""A small lottery run with a rewind point, as a test's subprocess that can die on purpose.

    python interrupted_run.py DIGITS_DIR ROOT [pretrain:N | training:N | write:N]

pretrain:N / training:N: the process dies (os._exit, as kill -9 would leave it) at the N-th
batch of the pretraining (iterations 0..k) or of the level trainings; write:N: it dies inside
the N-th .npz write, after the temporary file is half written. Without a third argument the
run goes to the end. Checkpoints are written at every evaluation (--checkpoint_seconds=0), so
a death between evaluations is mid-interval.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tflth.engine.hparams import DatasetHparams, TrainingHparams  # noqa: E402
from tflth.lottery import runner  # noqa: E402
from tflth.lottery.hparams import LotteryHparams, PruningHparams  # noqa: E402

HPARAMS = LotteryHparams(DatasetHparams(batch_size=20, validation_size=40),
                         training=TrainingHparams(iterations=60, eval_every=20),
                         pruning=PruningHparams(rewind_iteration=15))  # 3 executions of 5 steps


class DieAt(keras.callbacks.Callback):
    def __init__(self, stage, count):
        super().__init__()
        self.stage, self.count = stage, count

    def on_train_batch_end(self, batch, logs=None):
        pretraining = self.params["steps"] == HPARAMS.pruning.rewind_iteration  # one fit of 0..k
        if pretraining == (self.stage == "pretrain"):
            self.count -= 1
            if self.count == 0:
                os._exit(9)


def die_in_write(count):
    """The count-th .npz write (checkpoints, masks, rewind states) half-writes its temporary
    file and dies."""
    def wrap(save):
        def half_then_die(file, **arrays):
            nonlocal count
            count -= 1
            save(file, **arrays)
            if count == 0:
                with open(file, "r+b") as f:
                    f.truncate(os.path.getsize(file) // 2)
                os._exit(9)
        return half_then_die
    np.savez, np.savez_compressed = wrap(np.savez), wrap(np.savez_compressed)


if __name__ == "__main__":
    digits, root = sys.argv[1:3]
    tf.config.experimental.enable_op_determinism()  # as the recipes run
    callbacks = []
    if len(sys.argv) > 3:
        stage, count = sys.argv[3].split(":")
        if stage == "write":
            die_in_write(int(count))
        else:
            callbacks.append(DieAt(stage, int(count)))
    runner.run(HPARAMS, levels=1, root=root, data_dir=digits, verbose=False, checkpoint_seconds=0.0,
               callbacks=callbacks)
    print("finished")
