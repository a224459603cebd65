"""Pruning methods on MNIST through the sparse-training runner (no penalty): SNIP at
initialisation, gradual magnitude pruning, RigL (docs/pruning.md).

  python recipes/mnist_prune.py --flagfile=recipes/flags/mnist_snip.cfg       # SNIP, 98% sparsity
  python recipes/mnist_prune.py --flagfile=recipes/flags/mnist_gradual.cfg    # gradual magnitude, 95%
  python recipes/mnist_prune.py --flagfile=recipes/flags/mnist_rigl.cfg       # RigL, 95%

The flags are recipes/mnist_l0.py's (that recipe with --penalty=none). Rerunning a command resumes it.
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["prune", *sys.argv[1:]])
