"""The hyperparameters of a sparse-training run: data, model, training, and how sparsity is
learned. Every field is a flag of the same name; the run folder is named by their hash.

Strength is per training example, as in Louizos et al. (2018): the loss is
cross-entropy + strength / N * sum(penalty), N the training-set size. For L0 the penalty is
E[L0] (the paper's lambda = 0.1 is --strength=0.1); for a MAP penalty it is -log prior(w).
"""
import dataclasses

from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.hparams import Sections, fail, field, one_of

# "none", the L0 family, and the MAP penalties of tflth.regularizers by their names there.
PENALTIES = ("none", "l0", "l1", "lp", "student_t", "log_t", "log_uniform", "horseshoe", "horseshoe_plus", "igg",
             "log_scale_t")
GATES = ("neuron", "weight")
PER_LAYER_KEYS = ("strength", "droprate_init", "gate_l2")


@dataclasses.dataclass(frozen=True)
class ModelHparams:
    model: str = field("lenet_300_100", "Architecture (tflth.models).")

    def __post_init__(self):
        from tflth.models import MODELS
        one_of("model", self.model, sorted(MODELS))


@dataclasses.dataclass(frozen=True)
class SparsityHparams:
    penalty: str = field("l0", "l0 (hard-concrete gates, Louizos et al. 2018), none, or a MAP penalty of "
                               "tflth.regularizers: " + ", ".join(PENALTIES[2:]) + ".")
    strength: float = field(0.1, "Penalty strength per training example: loss = cross-entropy + "
                                 "strength / N * sum(penalty). For l0 the paper's lambda (0.1 on MNIST).")
    penalty_scale: float = field(0.0, "MAP penalties with a weight scale: the typical weight magnitude tau "
                                      "(student_t, horseshoe, horseshoe_plus: scale=tau; log_t, log_scale_t: "
                                      "loc=log(tau); the others have no scale). 0: the penalty's own default.")
    gates: str = field("neuron", "l0: neuron (input neurons of dense layers, filters of convs, as the paper) "
                                 "or weight.")
    gate_l2: float = field(0.0, "l0: strength of the gate-weighted L2 term of the paper's Eq. 14.")
    droprate_init: float = field(0.5, "l0: initial probability of a gate being closed (the paper's code: 0.5, "
                                      "and 0.2 for the MLP's input layer: see --per_layer).")
    per_layer: str = field("", "Per-layer overrides, e.g. 'fc1.droprate_init=0.2,fc2.strength=0.5' "
                               f"(keys: {', '.join(PER_LAYER_KEYS)}).")
    keep_percent: float = field(0.0, "After training, prune by magnitude of the deployed weights (global) to "
                                     "this % of weights and test again: penalties compared at matched "
                                     "sparsity. 0: no pruning.")

    def __post_init__(self):
        one_of("penalty", self.penalty, PENALTIES)
        one_of("gates", self.gates, GATES)
        if not self.strength >= 0:
            fail("strength", self.strength, "must be >= 0")
        if not self.penalty_scale >= 0:
            fail("penalty_scale", self.penalty_scale, "must be > 0 (or 0 for the penalty's default)")
        if not self.gate_l2 >= 0:
            fail("gate_l2", self.gate_l2, "must be >= 0")
        if not 0 < self.droprate_init < 1:
            fail("droprate_init", self.droprate_init, "must be in (0, 1)")
        if not 0 <= self.keep_percent < 100:
            fail("keep_percent", self.keep_percent, "must be in [0, 100) (0: no pruning)")
        self.overrides  # checks --per_layer

    @property
    def overrides(self):
        """--per_layer as {layer: {key: float}}."""
        out = {}
        for item in filter(None, (part.strip() for part in self.per_layer.split(","))):
            name, _, value = item.partition("=")
            layer, _, key = name.partition(".")
            if key not in PER_LAYER_KEYS:
                fail("per_layer", self.per_layer, f"{item!r}: expected layer.key=value with key one of "
                                                  f"{', '.join(PER_LAYER_KEYS)}")
            try:
                number = float(value)
            except ValueError:
                fail("per_layer", self.per_layer, f"{item!r}: the value must be a number")
            if not (0 < number < 1 if key == "droprate_init" else number >= 0):
                fail("per_layer", self.per_layer, f"{item!r}: {key} must be "
                                                  f"{'in (0, 1)' if key == 'droprate_init' else '>= 0'}")
            out.setdefault(layer, {})[key] = number
        return out


@dataclasses.dataclass(frozen=True)
class TrainerHparams(Sections):
    """Everything that determines a run's results; hashed into the run folder name."""
    dataset: DatasetHparams = dataclasses.field(default_factory=DatasetHparams)
    model: ModelHparams = dataclasses.field(default_factory=ModelHparams)
    training: TrainingHparams = dataclasses.field(default_factory=TrainingHparams)
    sparsity: SparsityHparams = dataclasses.field(default_factory=SparsityHparams)


SECTIONS = (DatasetHparams, ModelHparams, TrainingHparams, SparsityHparams)
