"""The hyperparameters of a sparse-training run: data, model, training, and how sparsity is
learned. Every field is a flag of the same name; the run folder is named by their hash.

Strength is per training example, as in Louizos et al. (2018): the loss is
cross-entropy + strength / N * sum(penalty), N the training-set size. For L0 the penalty is
E[L0] (the paper's lambda = 0.1 is --strength=0.1); for a MAP penalty it is -log prior(w).
With --prior the layers are Bayesian and the penalty is KL(q || p): strength 1 is the ELBO.

Pruning while training (--prune_score) works for every family: to --prune_to % of the
weights along Zhu & Gupta's (2017) cubic schedule, or by --prune_threshold.
"""
import dataclasses
import math

from tflth import priors, regularizers
from tflth.engine.hparams import DatasetHparams, TrainingHparams
from tflth.layers.bayesian import SCALE_INIT
from tflth.hparams import Sections, check_numbers, fail, field, one_of
from tflth.pruning import available_scores

# The choices come from the registries: "none", the L0 family and the MAP penalties of
# tflth.regularizers; the priors of tflth.priors; the scores of tflth.pruning (read when the flags
# are checked, so a score registered by your code is a --prune_score too).
PENALTIES = ("none", "l0", *regularizers.PENALTIES)
GATES = ("neuron", "weight")
PRIORS = ("none", *priors.PRIORS)
ESTIMATORS = ("flipout", "reparam", "local_reparam")  # the Bayesian layer families
SCOPES = ("global", "layerwise", "erk")
PRUNE_SCHEDULES = ("gradual", "oneshot")
DST = ("", "set", "rigl")

PER_LAYER_KEYS = ("strength", "droprate_init", "gate_l2")


@dataclasses.dataclass(frozen=True)
class ModelHparams:
    model: str = field("lenet_300_100", "Architecture: a tflth.models name, keras.applications.NAME, or "
                                         "package.module:function (your own; see docs/keras.md).")

    def __post_init__(self):
        from tflth.models import check_model
        check_model(self.model)


@dataclasses.dataclass(frozen=True)
class SparsityHparams:
    """What makes a run sparse: the penalty or L0 gates, the prior, pruning while training,
    dynamic sparse training (one flag each; checked by concern in __post_init__)."""
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
    prior: str = field("none", "Bayesian layers with this prior (tflth.priors): " + ", ".join(PRIORS[1:])
                               + "; none: deterministic layers. Needs --penalty=none.")
    prior_args: str = field("", "Arguments of the prior, e.g. 'scale=0.1' (Normal), 'global_scale=1e-5,scale=1' "
                                "(Horseshoe), 'inclusion=0.1,slab_scale=1' (SpikeAndSlab).")
    estimator: str = field("flipout", "Bayesian layers' gradient estimator: " + ", ".join(ESTIMATORS) + ".")
    scale_init: float = field(SCALE_INIT, "Initial posterior scale of every Bayesian weight (exp(-5): sparse "
                                          "variational dropout's log sigma^2 = -10).")
    kl_warmup: int = field(0, "Bayesian layers: the KL weight rises linearly from 0 to 1 over this many "
                              "iterations, from --kl_warmup_start on (0: the whole ELBO from the start).")
    kl_warmup_start: int = field(0, "Bayesian layers: the KL weight is 0 before this iteration (with --kl_warmup).")
    mc_samples: int = field(30, "Bayesian layers: weight samples of the Monte-Carlo predictive distribution "
                                "whose calibration is reported after training.")
    prune_score: str = field("", "Prune while training by this score (tflth.pruning): "
                                 + ", ".join(available_scores()) + "; empty: no pruning while training.")
    prune_to: float = field(0.0, "Prune while training down to this % of the weights, gradually (Zhu & Gupta's "
                                 "cubic schedule from --prune_start to --prune_end). 0: no target.")
    prune_threshold: str = field("", "Prune while training every weight whose score is below this, at every "
                                     "pruning step (log_alpha: -3 drops log alpha > 3, sparse VD's rule). "
                                     "Empty: none.")
    prune_every: int = field(1000, "Iterations between pruning steps.")
    prune_start: int = field(0, "First pruning step (the schedule starts here).")
    prune_end: int = field(0, "Last pruning step; 0: three quarters of --iterations.")
    prune_scope: str = field("global", "How the sparsity is shared among layers: global (one threshold over all "
                                       "layers), layerwise (the same sparsity in each) or erk (Erdos-Renyi-Kernel, "
                                       "Evci et al. 2020: small layers denser).")
    prune_schedule: str = field("gradual", "With --prune_to: gradual (Zhu & Gupta's cubic schedule, every "
                                           "--prune_every from --prune_start to --prune_end) or oneshot (all at "
                                           "--prune_start; 0: at initialisation, as SNIP).")
    prune_overrides: str = field("", "With --prune_to: % of weights kept in some layers, the others making up "
                                     "the total, e.g. 'first=100' (a dense first layer); keys: layer names, roles "
                                     "(conv, dense, output), first, last.")
    prune_batches: int = field(1, "Gradient scores (snip, taylor): training batches of --batch_size they read.")
    straight_through: bool = field(False, "Masked layers with a straight-through estimator: pruned weights keep "
                                          "their dense values and gradient, and each pruning step chooses the masks "
                                          "afresh from them (needs --prune_score=magnitude and --prune_to).")
    dst: str = field("", "Dynamic sparse training on top of the pruned model: set (random growth, Mocanu et al. "
                         "2018) or rigl (growth by gradient, Evci et al. 2020); every --dst_every iterations the "
                         "smallest weights are replaced, the sparsity kept. Empty: static masks.")
    dst_every: int = field(100, "Iterations between dynamic-sparsity updates (RigL: 100).")
    dst_alpha: float = field(0.3, "Initial drop fraction, decayed by a cosine to 0 at --dst_end (RigL: 0.3).")
    dst_end: int = field(0, "Last dynamic-sparsity update before this iteration; 0: three quarters of --iterations.")

    def __post_init__(self):
        # Each flag alone first (so a typo is what is reported), then how they combine, by concern.
        check_numbers(self)
        self._check_values()
        self._check_penalty_and_prior()
        self._check_pruning()
        self._check_dst()

    def _check_values(self):
        one_of("penalty", self.penalty, PENALTIES)
        one_of("gates", self.gates, GATES)
        one_of("prior", self.prior, PRIORS)
        one_of("estimator", self.estimator, ESTIMATORS)
        one_of("prune_score", self.prune_score, ("", *available_scores()))
        one_of("prune_scope", self.prune_scope, SCOPES)
        one_of("prune_schedule", self.prune_schedule, PRUNE_SCHEDULES)
        one_of("dst", self.dst, DST)
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
        if not self.scale_init > 0:
            fail("scale_init", self.scale_init, "must be > 0")
        for name in ("kl_warmup", "kl_warmup_start", "mc_samples", "prune_start", "prune_end"):
            if getattr(self, name) < 0:
                fail(name, getattr(self, name), "must be >= 0")
        for name in ("prune_every", "prune_batches", "dst_every"):
            if getattr(self, name) < 1:
                fail(name, getattr(self, name), "must be >= 1")
        if not 0 <= self.prune_to < 100:
            fail("prune_to", self.prune_to, "must be in [0, 100) (% of weights kept; 0: no target)")
        if self.prune_threshold:
            try:
                if not math.isfinite(float(self.prune_threshold)):
                    raise ValueError
            except ValueError:
                fail("prune_threshold", self.prune_threshold, "must be a number (or empty)")
        if not 0 < self.dst_alpha < 1:
            fail("dst_alpha", self.dst_alpha, "must be in (0, 1)")
        if self.dst_end < 0:
            fail("dst_end", self.dst_end, "must be >= 0 (0: three quarters of --iterations)")

    def _check_penalty_and_prior(self):
        self.overrides  # checks --per_layer
        if self.prior != "none" and self.penalty != "none":
            fail("penalty", self.penalty, f"must be none with --prior={self.prior} (the KL is the penalty)")
        if self.prior != "none" and self.strength != 1:
            fail("strength", self.strength, f"must be 1 with --prior={self.prior}: the KL weight of the ELBO "
                                            "(--kl_warmup ramps it up)")
        if self.prior != "none" and self.per_layer:
            fail("per_layer", self.per_layer, f"has no keys for Bayesian layers (--prior={self.prior})")
        if self.prior == "none" and self.prior_args:
            fail("prior_args", self.prior_args, "needs --prior")
        self.prior_object  # checks --prior_args
        if self.prior == "none":
            for name in ("estimator", "scale_init", "kl_warmup", "kl_warmup_start"):
                if getattr(self, name) != SparsityHparams.__dataclass_fields__[name].default:
                    fail(name, getattr(self, name), "applies to Bayesian layers only: it needs --prior")

    def _check_pruning(self):
        self.overrides_to  # checks --prune_overrides
        if self.prune_overrides and not self.prune_to:
            fail("prune_overrides", self.prune_overrides, "needs --prune_to")
        if self.prune_scope == "erk" and not self.prune_to:
            fail("prune_scope", self.prune_scope, "needs --prune_to (ERK shares a target sparsity)")
        if self.prune_schedule == "oneshot" and self.prune_threshold:
            fail("prune_schedule", self.prune_schedule, "prunes to --prune_to, not by --prune_threshold")
        if self.straight_through and not (self.prune_score == "magnitude" and self.prune_to):
            fail("straight_through", self.straight_through, "needs --prune_score=magnitude and --prune_to")
        if self.straight_through and (self.penalty == "l0" or self.prior != "none"):
            fail("straight_through", self.straight_through, "works on masked layers (not L0 or Bayesian ones)")
        if self.prune_score and not (self.prune_to or self.prune_threshold):
            fail("prune_score", self.prune_score, "needs --prune_to or --prune_threshold (how far to prune)")
        if not self.prune_score and (self.prune_to or self.prune_threshold):
            fail("prune_score", self.prune_score, "is required with --prune_to or --prune_threshold")
        if self.prune_to and self.prune_threshold:
            fail("prune_threshold", self.prune_threshold, "cannot go with --prune_to (the threshold would push the "
                                                          "schedule past its target); choose one")

    def _check_dst(self):
        if self.dst and not self.prune_to:
            fail("dst", self.dst, "needs a sparse model to rewire: --prune_score and --prune_to (e.g. random, "
                                  "oneshot at --prune_start=0)")
        if self.dst and self.straight_through:
            fail("dst", self.dst, "cannot go with --straight_through (grown weights must start at zero)")
        if self.dst and (self.prior != "none" or self.penalty == "l0"):
            fail("dst", self.dst, "works on masked layers (not with --prior or --penalty=l0)")

    @property
    def prior_object(self):
        """The tflth.priors.Prior of --prior and --prior_args (None for --prior=none)."""
        if self.prior == "none":
            return None
        kwargs = {}
        for item in filter(None, (part.strip() for part in self.prior_args.split(","))):
            key, _, value = item.partition("=")
            try:
                kwargs[key.strip()] = value.strip() if key.strip() == "group" else float(value)
            except ValueError:
                fail("prior_args", self.prior_args, f"{item!r}: expected key=number")
        try:
            return priors.PRIORS[self.prior](**kwargs)
        except TypeError:
            allowed = [f.name for f in dataclasses.fields(priors.PRIORS[self.prior])]
            fail("prior_args", self.prior_args, f"a key is not an argument of --prior={self.prior}; "
                                                + (f"allowed: {', '.join(allowed)}" if allowed else "it takes none"))
        except ValueError as e:
            fail("prior_args", self.prior_args, str(e))

    @property
    def overrides_to(self):
        """--prune_overrides as {layer, role, first or last: sparsity}."""
        out = {}
        for item in filter(None, (part.strip() for part in self.prune_overrides.split(","))):
            key, _, value = item.partition("=")
            try:
                kept = float(value)
            except ValueError:
                kept = -1.0
            if not key.strip() or not 0 < kept <= 100:
                fail("prune_overrides", self.prune_overrides, f"{item!r}: expected key=% of weights kept in (0, 100]")
            out[key.strip()] = 1.0 - kept / 100.0
        return out

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
                if not math.isfinite(number):
                    raise ValueError
            except ValueError:
                fail("per_layer", self.per_layer, f"{item!r}: the value must be a finite number")
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
