"""python -m tflth COMMAND [FLAGS]: the `tflth` command (tflth.commands)."""
from tflth import commands

if __name__ == "__main__":
    commands.main()
