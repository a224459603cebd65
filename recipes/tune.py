"""keras-tuner searches over sparsity hyperparameters, each trial a sparse-training run.

  python recipes/tune.py --flagfile=recipes/flags/mnist_tune_gradual.cfg   # how far and when to prune, and the lr
  python recipes/tune.py --flagfile=recipes/flags/mnist_l0_weight.cfg --search=strength=log:0.1:3 --max_weights_kept=5

The base run takes every flag of recipes/mnist_l0.py (one --strength, not a list); --search gives the ranges
(tflth/tuning/space.py), --tuner random | bayesian | hyperband, --objective what to optimise.
The trials table, its plot and the best model (exported) land in <root>/tune_<hash>/.
MNIST is packaged with tflth (no network needed). Rerunning a command resumes the search.
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["tune", *sys.argv[1:]])
