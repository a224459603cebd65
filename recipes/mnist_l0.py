"""Sparsity learned during training on MNIST: L0 gates (Louizos, Welling & Kingma 2018) and
heavy-tailed MAP penalties.

  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_l0_neuron.cfg      # LeNet-300-100, neuron gates
  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_l0_weight.cfg      # LeNet-300-100, weight gates
  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_l0_lenet5.cfg      # LeNet-5, filter gates
  python recipes/mnist_l0.py --flagfile=recipes/flags/mnist_penalties.cfg      # every penalty, matched sparsity

MNIST is packaged with tflth (no network needed). Rerunning a command resumes it.
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["train", *sys.argv[1:]])
