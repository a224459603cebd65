"""keras-tuner searches over lottery-ticket hyperparameters, each trial a lottery run of --levels
levels (no control branches) whose result is the last level's ticket.

  python recipes/tune_lottery.py --flagfile=recipes/flags/mnist_tune_lottery.cfg   # the rewinding iteration

The base run takes the flags of recipes/mnist_lth.py (not --branches, --control_levels or
--workers); --search gives the ranges (tflth/tuning/space.py), e.g.
'rewind_iteration=int:0:2000:500,fraction=float:0.1:0.5'; --tuner, --objective and the trials
table, plot and export of the best ticket are those of recipes/tune.py (docs/tuning.md).
Rerunning a command resumes the search.
"""
import sys

from tflth import commands

if __name__ == "__main__":
    commands.main(["tune_lottery", *sys.argv[1:]])
