"""`tflth summarize` for a clone that is not installed: python tools/summarize.py RUN [...] (tflth/summary/cli.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tflth.summary.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
