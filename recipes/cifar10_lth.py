"""Lottery tickets on CIFAR-10: Conv-2/4/6 (Frankle & Carbin 2019), and VGG-19 and
ResNet-20 with late rewinding (Frankle et al. 2020). These need a GPU.

  python recipes/cifar10_lth.py --flagfile=recipes/flags/cifar10_conv2.cfg
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; set it to 0 to see them

from tflth.lottery import cli  # noqa: E402

if __name__ == "__main__":
    cli.main()
