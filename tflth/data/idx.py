"""Reader for the IDX format of the original MNIST files (pure numpy).

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the raw big-endian data.
"""

import gzip
import os
import zlib

import numpy as np

# IDX dtype code -> big-endian numpy dtype.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path):
    with open(path, "rb") as f:
        raw = f.read()
    # Sniff the gzip header instead of trusting the suffix: renamed files happen.
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"IDX file {path!r}: corrupt or truncated gzip data ({e})") from e


def read_idx(path):
    """Returns the array stored in the IDX file `path` (optionally gzipped).

    Raises ValueError naming the file if it is corrupt or truncated.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"IDX file {path!r}: truncated header ({len(raw)} bytes)")
    zero1, zero2, code, ndim = raw[:4]
    if zero1 or zero2:
        raise ValueError(f"IDX file {path!r}: bad magic number {raw[:4].hex()} "
                         "(the first two bytes must be zero)")
    if code not in _DTYPES:
        raise ValueError(f"IDX file {path!r}: unknown dtype code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"IDX file {path!r}: zero dimensions")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise ValueError(f"IDX file {path!r}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_end
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise ValueError(f"IDX file {path!r}: {what}: shape {shape} needs {expected} "
                         f"data bytes, found {actual}")
    data = np.frombuffer(raw, dtype, offset=header_end).reshape(shape)
    # Native byte order so that TF and numpy ops downstream take the fast path.
    return data.astype(dtype.newbyteorder("="), copy=False)
