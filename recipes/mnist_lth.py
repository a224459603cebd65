"""Lottery tickets on MNIST (Frankle & Carbin 2019, LeNet-300-100).

  python recipes/mnist_lth.py --flagfile=recipes/flags/mnist_lth.cfg          # the paper
  python recipes/mnist_lth.py --flagfile=recipes/flags/mnist_lth_quick.cfg    # minutes on a CPU

MNIST is packaged with tflth (no network needed); --data_dir=DIR or TFLTH_DATA_DIR=DIR reads
another copy of the four IDX files. --workers=2 trains branches in two processes.
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["lottery", *sys.argv[1:]])
