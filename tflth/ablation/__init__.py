"""The ablation study: every pruning method on one dataset, model, budget and seeds."""
from tflth.ablation.methods import IMP_FRACTION, METHODS, NAMES, imp_kept, imp_levels, sparsity_hparams
from tflth.ablation.report import check, summary, table, write
from tflth.ablation.runner import Study, collect, run

__all__ = ["Study", "check", "collect", "imp_kept", "imp_levels", "run", "sparsity_hparams", "summary", "table",
           "write"]
