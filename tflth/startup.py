"""TensorFlow imported without its C++ start-up lines.

Importing TensorFlow 2.21 prints "oneDNN custom operations are on", "Could not find cuda
drivers" and the like before its logging reads TF_CPP_MIN_LOG_LEVEL, so that variable cannot
hide them; finding no GPU then logs "failed call to cuInit" as an error; training with XLA
logs "Compiled cluster using XLA!". When tflth imports TensorFlow (nothing has yet):
- TF_CPP_MIN_LOG_LEVEL, where the environment leaves it unset, is 1 (no INFO records) while
  TensorFlow reads it, at its import, and unset again after: TensorFlow keeps the level;
- the process's stderr passes through a filter while TensorFlow is imported and lists the
  devices (which tries CUDA): it drops absl's INFO records, the header absl prints before them,
  and the cuInit error of a machine that has no CUDA driver. Everything else (warnings,
  errors, Python's own lines) goes through as it comes.
TF_CPP_MIN_LOG_LEVEL=0 in the environment shows everything, as TensorFlow would.
"""
import contextlib
import os
import re
import sys
import threading

# absl's log format: a severity letter, MMDD, the time, the thread, file:line]
_RECORD = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
_HEADER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_CONTINUED = "To enable the following instructions:"  # the second line of an INFO record (cpu_feature_guard)
_NO_DRIVER = "Could not find cuda drivers on your machine"
_NO_CUDA = "failed call to cuInit"


class Filter:
    """Lines in, the lines to show out (`line` returns them). A header is held until the next
    line says whether a record it heads is shown."""

    def __init__(self):
        self.held, self.no_driver = None, False

    def line(self, text):
        bare = text.rstrip("\n")
        if bare == _HEADER:
            held, self.held = self.held, text
            return [held] if held else []
        held, self.held = self.held, None
        if _RECORD.match(text):
            self.no_driver |= _NO_DRIVER in text
            if text.startswith("I") or (self.no_driver and _NO_CUDA in text):
                return []
        elif bare.startswith(_CONTINUED):
            return []
        return [held, text] if held else [text]


def without_info(text):
    """`text` filtered as `Filter` does (what the whole of a capture would show)."""
    f = Filter()
    return "".join(out for line in text.splitlines(keepends=True) for out in f.line(line))


@contextlib.contextmanager
def filtered_stderr():
    """Inside, what is written to file descriptor 2 passes through `Filter` (a thread forwards
    each line as it comes); a stderr that is closed or not a file descriptor is left alone."""
    try:
        sys.stderr.flush()
        read, write = os.pipe()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # sys.stderr None (stderr closed), no fd 2
        yield
        return
    os.dup2(write, 2)
    os.close(write)

    def forward():
        f = Filter()
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                for out in f.line(line.decode(errors="replace")):
                    data = out.encode()
                    while data:
                        data = data[os.write(saved, data):]

    thread = threading.Thread(target=forward, name="tflth-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last writer: the thread reads to the end
        thread.join()
        os.close(saved)


def import_tensorflow():
    """Imports TensorFlow as the module docstring says (as is, when already imported or
    TF_CPP_MIN_LOG_LEVEL=0)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if "tensorflow" in sys.modules or level == "0":
        import tensorflow  # noqa: F401
        return
    if level is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
    try:
        with filtered_stderr():
            import tensorflow as tf
            tf.config.list_physical_devices()  # finds the devices (and logs what CUDA lacks) here
    finally:
        if level is None:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]
