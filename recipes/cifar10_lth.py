"""Lottery tickets on CIFAR-10: Conv-2/4/6 (Frankle & Carbin 2019), and VGG-19 and
ResNet-20 with late rewinding (Frankle et al. 2020). These need a GPU.

  python recipes/cifar10_lth.py --flagfile=recipes/flags/cifar10_conv2.cfg
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["lottery", *sys.argv[1:]])
