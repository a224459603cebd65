"""Files written whole or not at all. tflth.io has the library's writer, but it imports the
tflth package (and so TensorFlow), which this tool must not; the temporary files take tflth.io's
`.tmp-` prefix, so `tflth.io.remove_leftovers` clears those a killed write leaves."""
import os
import tempfile


def write(path, data):
    """Write to a temporary file in the same folder, then os.replace: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=f".tmp-{os.path.basename(path)}.")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
