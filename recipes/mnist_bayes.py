"""Bayesian layers on MNIST: sparse variational dropout, the horseshoe, spike-and-slab, and
pruning by uncertainty while training (signal-to-noise ratio, log alpha).

  python recipes/mnist_bayes.py --flagfile=recipes/flags/mnist_bayes_svd.cfg        # sparse VD, LeNet-300-100
  python recipes/mnist_bayes.py --flagfile=recipes/flags/mnist_bayes_horseshoe.cfg  # horseshoe, node pruning
  python recipes/mnist_bayes.py --flagfile=recipes/flags/mnist_bayes_snr.cfg        # Normal prior, SNR pruning
  python recipes/mnist_bayes.py --flagfile=recipes/flags/mnist_bayes_lenet5.cfg     # sparse VD, LeNet-5
  python recipes/mnist_bayes.py --flagfile=recipes/flags/mnist_bayes_spike_slab.cfg # spike-and-slab

The flags are those of recipes/mnist_l0.py (same runner and engine) with --penalty=none,
--strength=1 (the ELBO) and --prior=normal by default. MNIST is packaged with tflth (no
network needed). Rerunning a command resumes it.
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["bayes", *sys.argv[1:]])
