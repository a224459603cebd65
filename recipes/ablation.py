"""The ablation study: IMP with rewinding, one-shot and gradual magnitude, SNIP, random, SET, RigL,
L0, sparse VD, horseshoe and SNR pruning on one dataset and model, at several % of weights kept,
over seeds, with the same training for all (tflth/ablation/methods.py states each method's budget).

  python recipes/ablation.py --flagfile=recipes/flags/mnist_ablation.cfg

Rerunning the command skips finished cells and resumes a killed one; the table, JSON and plot go
to <root>/ablation (or --out).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; set it to 0 to see them

from tflth.ablation import cli  # noqa: E402

if __name__ == "__main__":
    cli.main()
