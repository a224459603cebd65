"""Pruning methods on MNIST through the sparse-training runner (no penalty): SNIP at
initialisation, gradual magnitude pruning, RigL (docs/pruning.md).

  python recipes/mnist_prune.py --flagfile=recipes/flags/mnist_snip.cfg       # SNIP, 98% sparsity
  python recipes/mnist_prune.py --flagfile=recipes/flags/mnist_gradual.cfg    # gradual magnitude, 95%
  python recipes/mnist_prune.py --flagfile=recipes/flags/mnist_rigl.cfg       # RigL, 95%

The flags are recipes/mnist_l0.py's (that recipe with --penalty=none). Rerunning a command resumes it.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; set it to 0 to see them

from tflth.trainer import cli  # noqa: E402

if __name__ == "__main__":
    cli.main(defaults={"penalty": "none"})
