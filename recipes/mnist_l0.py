"""Sparsity learned during training on MNIST: L0 gates (Louizos, Welling & Kingma 2018) and
heavy-tailed MAP penalties.

  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_l0_neuron.cfg      # LeNet-300-100, neuron gates
  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_l0_weight.cfg      # LeNet-300-100, weight gates
  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_l0_lenet5.cfg      # LeNet-5, filter gates
  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_penalties.cfg      # every penalty, matched sparsity

MNIST is packaged with tflth (no network needed). Rerunning a command resumes it.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; set it to 0 to see them

from tflth.trainer import cli  # noqa: E402

if __name__ == "__main__":
    cli.main()
