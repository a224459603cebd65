"""The hyperparameters every recipe trains with: the data and the training loop.

Defaults are the lottery-ticket paper's MNIST setup (Frankle & Carbin 2019): batch 60,
Adam 1.2e-3, 50,000 iterations. Every field is a flag of the same name.
"""
import dataclasses

from tflth.hparams import check_numbers, fail, field, one_of


@dataclasses.dataclass(frozen=True)
class DatasetHparams:
    """Which data a run trains on and how it is batched (flags of every runner)."""
    dataset: str = field("mnist", "Dataset name (tflth.data).")
    batch_size: int = field(60, "Training batch size.")
    validation_size: int = field(5000, "Training examples held out for validation (the last ones).")
    augment: bool = field(False, "Random crop + horizontal flip (CIFAR).")

    def __post_init__(self):
        from tflth.data import DATASETS
        one_of("dataset", self.dataset, sorted(DATASETS))
        if self.batch_size < 1:
            fail("batch_size", self.batch_size, "must be >= 1")
        if self.validation_size < 1:
            fail("validation_size", self.validation_size, "must be >= 1 (early stopping needs a validation set)")


@dataclasses.dataclass(frozen=True)
class TrainingHparams:
    """How a model is trained: optimizer, learning-rate schedule, length, evaluation, precision."""
    optimizer: str = field("adam", "adam | sgd (with --momentum).")
    lr: float = field(1.2e-3, "Learning rate.")
    momentum: float = field(0.0, "SGD momentum.")
    weight_decay: float = field(0.0, "Decoupled weight decay (Keras optimizers' weight_decay).")
    l2: float = field(0.0, "Coupled L2: l2 * w added to every trainable variable's gradient before the "
                           "optimizer step (PyTorch's weight_decay, as open_lth trains).")
    iterations: int = field(50000, "Training iterations per level.")
    warmup: int = field(0, "Linear learning-rate warm-up iterations.")
    lr_drops: str = field("", "Comma-separated iterations at which the learning rate is multiplied by --lr_gamma.")
    lr_gamma: float = field(0.1, "Learning-rate drop factor.")
    lr_linear_decay: int = field(0, "From this iteration on, the learning rate decays linearly to 0 at "
                                    "--iterations (the sparse VD authors' code: from half-way). 0: no decay.")
    eval_every: int = field(500, "Evaluate on the validation set every this many iterations.")
    ema: float = field(0.0, "Momentum of an exponential moving average of the weights (Keras' use_ema) that "
                            "replaces them at the end of training and gives the final row; 0: none. The L0 "
                            "paper's code evaluates such an average (beta_ema = 0.999).")
    jit_compile: bool = field(True, "Compile training and evaluation with XLA (faster on CPU and GPU; not "
                                    "on GPUs under --deterministic: see tflth.determinism).")
    precision: str = field("float32", "Keras dtype policy: float32, mixed_float16 or mixed_bfloat16 (compute in "
                                      "16 bits, variables in float32; masks, L0 gates and Bayesian layers stay "
                                      "float32; mixed_float16 scales the loss).")

    def __post_init__(self):
        check_numbers(self)
        one_of("optimizer", self.optimizer, ("adam", "sgd"))
        one_of("precision", self.precision, ("float32", "mixed_float16", "mixed_bfloat16"))
        if self.lr <= 0:
            fail("lr", self.lr, "must be > 0")
        for name in ("weight_decay", "l2"):
            if getattr(self, name) < 0:
                fail(name, getattr(self, name), "must be >= 0")
        if not 0 <= self.momentum < 1:
            fail("momentum", self.momentum, "must be in [0, 1)")
        if self.lr_gamma <= 0:
            fail("lr_gamma", self.lr_gamma, "must be > 0 (the learning rate is multiplied by it at --lr_drops)")
        if self.iterations < 1:
            fail("iterations", self.iterations, "must be >= 1")
        if not 1 <= self.eval_every <= self.iterations:
            fail("eval_every", self.eval_every, f"must be in [1, --iterations={self.iterations}]")
        if not 0 <= self.ema < 1:
            fail("ema", self.ema, "must be in [0, 1) (0: no moving average)")
        if self.warmup < 0:
            fail("warmup", self.warmup, "must be >= 0")
        if not 0 <= self.lr_linear_decay < self.iterations:
            fail("lr_linear_decay", self.lr_linear_decay, f"must be in [0, --iterations={self.iterations}) "
                                                          "(0: no decay)")
        try:
            drops = self.drops
        except ValueError:
            fail("lr_drops", self.lr_drops, "must be comma-separated integers")
        if any(not 0 < d < self.iterations for d in drops) or list(drops) != sorted(drops):
            fail("lr_drops", self.lr_drops, f"must be increasing iterations in (0, {self.iterations})")

    @property
    def drops(self):
        return tuple(int(d) for d in self.lr_drops.split(",") if d.strip())
