"""Lottery tickets on MNIST (Frankle & Carbin 2019, LeNet-300-100).

  python recipes/mnist_lth.py --flagfile=recipes/flags/mnist_lth.cfg          # the paper
  python recipes/mnist_lth.py --flagfile=recipes/flags/mnist_lth_quick.cfg    # minutes on a CPU

MNIST is packaged with tflth (no network needed); --data_dir=DIR or TFLTH_DATA_DIR=DIR reads
another copy of the four IDX files. --workers=2 trains branches in two processes.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; set it to 0 to see them

from tflth.lottery import cli  # noqa: E402

if __name__ == "__main__":
    cli.main()
