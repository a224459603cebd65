"""python -m tflth.export: the old name of `tflth export` (tflth.commands), kept working."""
import sys

from tflth import commands

if __name__ == "__main__":
    print("note: python -m tflth.export is now tflth export (or python -m tflth export)", file=sys.stderr)
    commands.main(["export", *sys.argv[1:]])
