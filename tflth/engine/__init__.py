"""The training engine every recipe uses: hyperparameters, data streams, optimizers,
named training state, and the one loop (`train`) with evaluation, checkpoints, resume,
progress lines and TensorBoard."""
from tflth.engine import state
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.engine.loop import (Clock, boundaries, correct, evaluate, progress_file, resumed_seconds, segments,
                               steps_per_execution, summarize_rows, tensorboard_dir, timed, train)
from tflth.engine.optim import (CoupledL2Adam, CoupledL2SGD, StepSchedule, compile_model, compiled_with,
                                make_optimizer)
from tflth.engine.streams import eval_stream, train_stream

__all__ = ["Clock", "CoupledL2Adam", "CoupledL2SGD", "DatasetHparams", "StepSchedule", "TrainingHparams", "boundaries",
           "compile_model", "compiled_with", "correct", "eval_stream", "evaluate", "make_optimizer", "progress_file",
           "resumed_seconds", "segments", "state", "steps_per_execution", "summarize_rows", "tensorboard_dir", "timed",
           "train", "train_stream"]
