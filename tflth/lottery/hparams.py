"""The hyperparameters of a lottery-ticket run, one dataclass per concern.

Defaults are the paper's MNIST setup (Frankle & Carbin 2019): LeNet-300-100, Adam
1.2e-3, batch 60, 50,000 iterations per level, 20% pruned per level (10% of the
output layer), rewinding to initialisation. Every field is a flag of the same name.
The data and training sections are the engine's (tflth.engine.hparams).
"""
import dataclasses

from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.hparams import Sections, check_numbers, fail, field, fields, one_of

OPTIMIZER_STATES = ("fresh", "rewind")


@dataclasses.dataclass(frozen=True)
class ModelHparams:
    """The architecture and the layer family it is built from."""
    model: str = field("lenet_300_100", "Architecture: a tflth.models name, keras.applications.NAME, or "
                                         "package.module:function (your own; see docs/keras.md).")
    family: str = field("masked", "Layer family the architecture is built from.")

    def __post_init__(self):
        from tflth.layers import family as families
        from tflth.models import check_model
        check_model(self.model)
        families.get_family(self.family)


@dataclasses.dataclass(frozen=True)
class PruningHparams:
    """How each lottery level prunes and where its ticket rewinds to."""
    score: str = field("magnitude", "Pruning score (tflth.pruning.available_scores()).")
    scope: str = field("layerwise", "layerwise | global.")
    fraction: float = field(0.2, "Fraction of the remaining weights pruned per level (dense layers; "
                                  "all layers with --scope=global).")
    fraction_conv: float = field(-1.0, "Per-level fraction for conv layers (-1: same as --fraction).")
    fraction_output: float = field(0.1, "Per-level fraction for the output layer (-1: same as --fraction).")
    exclude: str = field("", "Comma-separated layer names or roles (conv, dense, output) never pruned.")
    rewind_iteration: int = field(0, "Rewind surviving weights to this iteration (0: initialisation).")
    rewind_weights: bool = field(True, "Every level's ticket starts from the weights at --rewind_iteration (weight "
                                       "rewinding); false: from the previous level's trained weights, pruned, with "
                                       "only the learning-rate schedule and the optimizer started afresh "
                                       "(learning-rate rewinding, Renda et al. 2020).")
    optimizer_state: str = field("fresh", "The optimizer state every branch of a level >= 1 starts from: "
                                          "fresh (zero moments, step 0, the learning-rate schedule resumed "
                                          "at --rewind_iteration; as open_lth) or rewind (the optimizer "
                                          "state saved at --rewind_iteration).")

    def __post_init__(self):
        from tflth.pruning import SCOPES, available_scores
        check_numbers(self)
        one_of("score", self.score, available_scores())
        one_of("scope", self.scope, SCOPES)
        if not 0 < self.fraction < 1:
            fail("fraction", self.fraction, "must be in (0, 1)")
        for name in ("fraction_conv", "fraction_output"):
            value = getattr(self, name)
            if value != -1.0 and not 0 <= value < 1:
                fail(name, value, "must be in [0, 1) or -1")
        if self.scope == "global" and (self.fraction_conv, self.fraction_output) != (-1.0, -1.0):
            fail("scope", self.scope, "global pruning takes one --fraction; "
                                      "set --fraction_conv=-1 --fraction_output=-1")
        if self.rewind_iteration < 0:
            fail("rewind_iteration", self.rewind_iteration, "must be >= 0")
        one_of("optimizer_state", self.optimizer_state, OPTIMIZER_STATES)

    @property
    def rates(self):
        """{role: fraction} for tflth.pruning.prune."""
        rates = {"dense": self.fraction}
        if self.fraction_conv != -1.0:
            rates["conv"] = self.fraction_conv
        if self.fraction_output != -1.0:
            rates["output"] = self.fraction_output
        return rates if self.scope == "layerwise" else None

    @property
    def excluded(self):
        """--exclude as a tuple for tflth.pruning.prune (names are checked against the model)."""
        return tuple(part.strip() for part in self.exclude.split(",") if part.strip())


@dataclasses.dataclass(frozen=True)
class LotteryHparams(Sections):
    """Everything that determines a run's results; hashed into the run folder name."""
    dataset: DatasetHparams = dataclasses.field(default_factory=DatasetHparams)
    model: ModelHparams = dataclasses.field(default_factory=ModelHparams)
    training: TrainingHparams = dataclasses.field(default_factory=TrainingHparams)
    pruning: PruningHparams = dataclasses.field(default_factory=PruningHparams)

    def __post_init__(self):
        if self.training.ema and self.pruning.rewind_iteration:
            # The rewind point would hold the average of iterations 0..k, not the weights at k.
            fail("ema", self.training.ema, "the moving average cannot be combined with --rewind_iteration > 0")
        if self.pruning.rewind_iteration >= self.training.iterations:
            fail("rewind_iteration", self.pruning.rewind_iteration,
                 f"must be < --iterations={self.training.iterations}")


SECTIONS = (DatasetHparams, ModelHparams, TrainingHparams, PruningHparams)


def flag_names():
    return [f.name for cls in SECTIONS for f in fields(cls)]
