"""Lottery tickets on MNIST (Frankle & Carbin 2019, LeNet-300-100).

  python recipes/mnist_lth.py --flagfile=recipes/flags/mnist_lth.cfg          # the paper
  python recipes/mnist_lth.py --flagfile=recipes/flags/mnist_lth_quick.cfg    # minutes on a CPU

Without a network, point the loader at the IDX files: --data_dir=DIR or TFLTH_DATA_DIR=DIR.
"""
from tflth.lottery import cli

if __name__ == "__main__":
    cli.main()
