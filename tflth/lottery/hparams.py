"""The hyperparameters of a lottery-ticket run, one dataclass per concern.

Defaults are the paper's MNIST setup (Frankle & Carbin 2019): LeNet-300-100, Adam
1.2e-3, batch 60, 50,000 iterations per level, 20% pruned per level (10% of the
output layer), rewinding to initialisation. Every field is a flag of the same name.
"""
import dataclasses

from tflth.hparams import fields


def _field(default, help_text):
    return dataclasses.field(default=default, metadata={"help": help_text})


def _fail(name, value, allowed):
    raise ValueError(f"--{name}={value!r}: {allowed}")


def _one_of(name, value, allowed):
    if value not in allowed:
        _fail(name, value, f"allowed: {', '.join(map(str, allowed))}")


@dataclasses.dataclass(frozen=True)
class DatasetHparams:
    dataset: str = _field("mnist", "Dataset name (tflth.data).")
    batch_size: int = _field(60, "Training batch size.")
    validation_size: int = _field(5000, "Training examples held out for validation (the last ones).")
    augment: bool = _field(False, "Random crop + horizontal flip (CIFAR).")

    def __post_init__(self):
        from tflth.data import DATASETS
        _one_of("dataset", self.dataset, sorted(DATASETS))
        if self.batch_size < 1:
            _fail("batch_size", self.batch_size, "must be >= 1")
        if self.validation_size < 1:
            _fail("validation_size", self.validation_size, "must be >= 1 (early stopping needs a validation set)")


@dataclasses.dataclass(frozen=True)
class ModelHparams:
    model: str = _field("lenet_300_100", "Architecture (tflth.models).")
    family: str = _field("masked", "Layer family the architecture is built from.")

    def __post_init__(self):
        from tflth.layers import family as families
        from tflth.models import MODELS
        _one_of("model", self.model, sorted(MODELS))
        families.get_family(self.family)


@dataclasses.dataclass(frozen=True)
class TrainingHparams:
    optimizer: str = _field("adam", "adam | sgd (with --momentum).")
    lr: float = _field(1.2e-3, "Learning rate.")
    momentum: float = _field(0.0, "SGD momentum.")
    weight_decay: float = _field(0.0, "Decoupled weight decay (Keras optimizers' weight_decay).")
    iterations: int = _field(50000, "Training iterations per level.")
    warmup: int = _field(0, "Linear learning-rate warm-up iterations.")
    lr_drops: str = _field("", "Comma-separated iterations at which the learning rate is multiplied by --lr_gamma.")
    lr_gamma: float = _field(0.1, "Learning-rate drop factor.")
    eval_every: int = _field(500, "Evaluate (and checkpoint) every this many iterations.")

    def __post_init__(self):
        _one_of("optimizer", self.optimizer, ("adam", "sgd"))
        if self.lr <= 0:
            _fail("lr", self.lr, "must be > 0")
        if self.iterations < 1:
            _fail("iterations", self.iterations, "must be >= 1")
        if not 1 <= self.eval_every <= self.iterations:
            _fail("eval_every", self.eval_every, f"must be in [1, --iterations={self.iterations}]")
        if self.warmup < 0:
            _fail("warmup", self.warmup, "must be >= 0")
        try:
            drops = self.drops
        except ValueError:
            _fail("lr_drops", self.lr_drops, "must be comma-separated integers")
        if any(not 0 < d < self.iterations for d in drops) or list(drops) != sorted(drops):
            _fail("lr_drops", self.lr_drops, f"must be increasing iterations in (0, {self.iterations})")

    @property
    def drops(self):
        return tuple(int(d) for d in self.lr_drops.split(",") if d.strip())


@dataclasses.dataclass(frozen=True)
class PruningHparams:
    score: str = _field("magnitude", "Pruning score (tflth.pruning.available_scores()).")
    scope: str = _field("layerwise", "layerwise | global.")
    fraction: float = _field(0.2, "Fraction of the remaining weights pruned per level (dense layers; "
                                  "all layers with --scope=global).")
    fraction_conv: float = _field(-1.0, "Per-level fraction for conv layers (-1: same as --fraction).")
    fraction_output: float = _field(0.1, "Per-level fraction for the output layer (-1: same as --fraction).")
    rewind_iteration: int = _field(0, "Rewind surviving weights to this iteration (0: initialisation).")

    def __post_init__(self):
        from tflth.pruning import SCOPES, available_scores
        _one_of("score", self.score, available_scores())
        _one_of("scope", self.scope, SCOPES)
        if not 0 < self.fraction < 1:
            _fail("fraction", self.fraction, "must be in (0, 1)")
        for name in ("fraction_conv", "fraction_output"):
            value = getattr(self, name)
            if value != -1.0 and not 0 <= value < 1:
                _fail(name, value, "must be in [0, 1) or -1")
        if self.scope == "global" and (self.fraction_conv, self.fraction_output) != (-1.0, -1.0):
            _fail("scope", self.scope, "global pruning takes one --fraction; "
                                       "set --fraction_conv=-1 --fraction_output=-1")
        if self.rewind_iteration < 0:
            _fail("rewind_iteration", self.rewind_iteration, "must be >= 0")

    @property
    def rates(self):
        """{role: fraction} for tflth.pruning.prune."""
        rates = {"dense": self.fraction}
        if self.fraction_conv != -1.0:
            rates["conv"] = self.fraction_conv
        if self.fraction_output != -1.0:
            rates["output"] = self.fraction_output
        return rates if self.scope == "layerwise" else None


@dataclasses.dataclass(frozen=True)
class LotteryHparams:
    """Everything that determines a run's results; hashed into the run folder name."""
    dataset: DatasetHparams = dataclasses.field(default_factory=DatasetHparams)
    model: ModelHparams = dataclasses.field(default_factory=ModelHparams)
    training: TrainingHparams = dataclasses.field(default_factory=TrainingHparams)
    pruning: PruningHparams = dataclasses.field(default_factory=PruningHparams)

    def __post_init__(self):
        if self.pruning.rewind_iteration >= self.training.iterations:
            _fail("rewind_iteration", self.pruning.rewind_iteration,
                  f"must be < --iterations={self.training.iterations}")

    @property
    def sections(self):
        return (self.dataset, self.model, self.training, self.pruning)

    def to_dict(self):
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d):
        return cls(**{f.name: f.type(**d[f.name]) for f in dataclasses.fields(cls)})


SECTIONS = (DatasetHparams, ModelHparams, TrainingHparams, PruningHparams)


def flag_names():
    return [f.name for cls in SECTIONS for f in fields(cls)]
