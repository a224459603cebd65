"""keras-tuner searches over sparsity hyperparameters (`recipes/tune.py`, `recipes/tune_lottery.py`).

`SparseHyperModel` turns a search space (`space.parse_space`) over the flags of the
sparse-training runner into keras-tuner trials, each trained by the one engine in its own
hashed run folder; `objective` names what a trial is judged by (accuracy, sparsity, or a
score that weighs them); `search.run` is the resumable search with its trials table and the
export of the best model.
"""
from tflth import extras, internals

extras.need("keras_tuner", "tflth.tuning (tflth tune)")
internals.check_keras_tuner_version()  # before the modules that rely on its checked private API

from tflth.tuning.hypermodel import METRICS, REPORTED, SparseHyperModel, check_objective, objective, score  # noqa: E402
from tflth.tuning.search import LotteryTuneHparams, SearchHparams, TuneHparams, export_best, make_tuner, trials  # noqa: E402
from tflth.tuning.space import Range, apply, default_space, parse, parse_space  # noqa: E402

__all__ = ["LotteryTuneHparams", "Range", "SearchHparams", "SparseHyperModel", "TuneHparams", "apply",
           "check_objective", "default_space", "export_best", "make_tuner", "objective", "parse", "parse_space",
           "score", "trials"]
