"""Optimizers and learning-rate schedules of the training engine.

A branch that starts at iteration k (a rewound lottery level) gets a *fresh* optimizer whose
step counter starts at 0, so Adam's bias correction starts afresh, while its learning-rate
schedule is shifted to resume at k (`StepSchedule(offset=k)`). Keras reads both from
`optimizer.iterations`; setting that counter to k instead would make Adam's first steps
several times too large (zero moments, bias correction of step k).
"""
import keras
import tensorflow as tf

from tflth import distribute, internals
from tflth.layers import family_variables


@keras.saving.register_keras_serializable(package="tflth")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then the learning rate times `gamma` at each drop, and with `decay=(a, b)`
    a linear decay to 0 from step a to step b; read at step + offset."""

    def __init__(self, lr, warmup=0, drops=(), gamma=0.1, offset=0, decay=None):
        self.lr, self.warmup, self.drops, self.gamma = lr, int(warmup), tuple(drops), gamma
        self.offset, self.decay = int(offset), tuple(decay) if decay else None

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + self.offset
        passed = tf.add_n([tf.cast(step >= d, tf.float32) for d in self.drops]) if self.drops else 0.0
        rate = self.lr * tf.pow(self.gamma, passed)
        if self.warmup:
            rate *= tf.minimum(1.0, (step + 1.0) / self.warmup)
        if self.decay:
            begin, end = self.decay
            rate *= tf.clip_by_value((end - step) / (end - begin), 0.0, 1.0)
        return rate

    def get_config(self):
        return {"lr": self.lr, "warmup": self.warmup, "drops": list(self.drops), "gamma": self.gamma,
                "offset": self.offset, "decay": list(self.decay) if self.decay else None}


class _CoupledL2:
    """Adds `l2 * w` to each gradient before the update: PyTorch's `weight_decay`, which
    momentum and Adam then scale like the gradient (Keras' `weight_decay` is decoupled).
    Variables passed to `exclude_from_l2` (by path) get none."""

    def __init__(self, *args, l2=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)
        self._l2_excluded = set()

    def exclude_from_l2(self, variables):
        self._l2_excluded |= {v.path for v in variables}

    def apply(self, grads, trainable_variables=None):
        variables = internals.optimizer_variables(self) if trainable_variables is None else trainable_variables
        grads = [g if g is None or v.path in self._l2_excluded else g + self.l2 * keras.ops.cast(v, g.dtype)
                 for g, v in zip(grads, variables)]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="tflth")
class CoupledL2SGD(_CoupledL2, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with coupled L2 (`l2=`), as `torch.optim.SGD(weight_decay=l2)`.

    One difference from PyTorch remains, Keras' own: its momentum buffer holds lr * gradient,
    PyTorch's the gradient, so right after a learning-rate drop Keras still moves with the
    old rate's momentum for a few steps; with a constant rate the two are identical."""


@keras.saving.register_keras_serializable(package="tflth")
class CoupledL2Adam(_CoupledL2, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with coupled L2 (`l2=`), as `torch.optim.Adam(weight_decay=l2)`."""


def make_optimizer(training, offset=0):
    """The optimizer of `TrainingHparams`, its schedule resuming at iteration `offset`."""
    rate = training.lr
    if training.warmup or training.drops or training.lr_linear_decay:
        decay = (training.lr_linear_decay, training.iterations) if training.lr_linear_decay else None
        rate = StepSchedule(training.lr, training.warmup, training.drops, training.lr_gamma, offset, decay)
    kwargs = {"weight_decay": training.weight_decay or None}
    if training.ema:
        kwargs.update(use_ema=True, ema_momentum=training.ema)
    if training.optimizer == "sgd":
        kwargs["momentum"] = training.momentum
    if training.l2:
        cls = CoupledL2SGD if training.optimizer == "sgd" else CoupledL2Adam
        return cls(rate, l2=training.l2, **kwargs)
    cls = keras.optimizers.SGD if training.optimizer == "sgd" else keras.optimizers.Adam
    return cls(rate, **kwargs)


def compiled_with(model):
    """How `model` was compiled in fact, for a run's metrics: without XLA under op determinism
    (`tflth.determinism`: the recipes' --deterministic on GPUs) whatever jit_compile asks, and
    one step per execution without XLA under several replicas."""
    return {"jit_compile": bool(model.jit_compile), "steps_per_execution": int(model.steps_per_execution or 1),
            "replicas": model.distribute_strategy.num_replicas_in_sync}


def compile_model(model, training, steps_per_execution=1, offset=0):
    """Compiles `model` for classification with a fresh optimizer (built, so its state exists)."""
    # "cross_entropy" is the data term alone: Keras' loss also holds the penalties layers add
    # (L0, KL, kernel regularizers), which early stopping must not read as validation loss.
    metrics = ["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")]
    optimizer = make_optimizer(training, offset)
    # L2 and weight decay shrink weights and biases only: a family's own variables (L0 gates,
    # posterior scales, a prior's parameters) have their own penalty, and decaying a posterior's
    # rho toward 0 would inflate its scale to softplus(0) = 0.69.
    extra = family_variables(model)
    if training.weight_decay and extra:
        optimizer.exclude_from_weight_decay(var_list=extra)
    if training.l2:
        optimizer.exclude_from_l2(extra)
    # XLA on one replica only (tflth.distribute.xla_allowed). Keras' loop of
    # several steps per execution reads a distributed iterator inside a tf.cond, which TF 2.21
    # cannot run ("must feed a value for placeholder", seen with 2 CPU replicas and with 2
    # workers): one step per execution under a strategy of several replicas.
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        steps_per_execution = 1
    # Keras compiles without XLA under op determinism anyway (tflth.determinism), with a warning.
    jit_compile = training.jit_compile and distribute.xla_allowed() and not internals.op_determinism_on()
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=metrics, steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
