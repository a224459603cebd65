"""The ablation study: IMP with rewinding, one-shot and gradual magnitude, SNIP, random, SET, RigL,
L0, sparse VD, horseshoe and SNR pruning on one dataset and model, at several % of weights kept,
over seeds, with the same training for all (tflth/ablation/methods.py states each method's budget).

  python recipes/ablation.py --flagfile=recipes/flags/mnist_ablation.cfg

Rerunning the command skips finished cells and resumes a killed one; the table, JSON and plot go
to <root>/ablation (or --out).
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["ablation", *sys.argv[1:]])
