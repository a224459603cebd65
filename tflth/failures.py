"""Failures a run reports in one line, saying what to do, instead of a traceback.

Runners raise these where a run cannot go on (a damaged state file, a loss that became NaN,
a run folder another process is training, a full disk); the command lines (`tflth.cli.run`)
print the message and exit with status 1. Nothing is recorded as finished when one is raised,
and every file written before it is whole (`tflth.io` writes atomically).
"""
import errno
import os
import shutil


class RunFailure(Exception):
    """A run cannot go on; the message names the file or flag at fault and what to do. (Not a
    RuntimeError: the command lines' checks of bad input, which catch those, let it through.)"""


class DamagedFile(RunFailure):
    """A state file that cannot be read back (truncated, emptied, bit-flipped)."""

    def __init__(self, path, why, remedy=None):
        self.path, self.why, self.remedy = path, why, remedy
        super().__init__(f"{path} is damaged ({why}); "
                         + (remedy or "remove it and rerun the same command to redo the stage that wrote it"))

    def __reduce__(self):  # raised in a --workers process, it is pickled to the parent
        return DamagedFile, (self.path, self.why, self.remedy)


class NonFiniteLoss(RunFailure):
    """The training loss became NaN or infinite."""


class RunBusy(RunFailure):
    """Another process holds the run folder."""


class DiskFull(RunFailure):
    """A write ran out of space."""


def no_space(error):
    """The error that `error` is or was raised from that says "no space left on device" (an
    OSError, or TensorFlow's own error for its writers, which names it in its message), else None."""
    while error is not None:
        if (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
                or "No space left on device" in str(error)):
            return error
        error = error.__cause__ or error.__context__
    return None


def disk_full(path, written=None):
    """The DiskFull error for a write to `path` (None: unknown) that failed after `written` bytes."""
    if path is None:
        return DiskFull("disk full (no space left on device); free some space and rerun the same command: it "
                        "resumes from the last checkpoint")
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:,.0f} MB free there"
    except OSError:
        free = "free space unknown"
    need = f", and the file needed more than {written / 1e6:,.1f} MB" if written else ""
    return DiskFull(f"disk full writing {path} ({free}{need}); free some space and rerun the same command: "
                    "it resumes from the last checkpoint")
