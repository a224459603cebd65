"""Atomic writes: write to a temporary file beside the target, then rename; reads that name
the file they could not read.

A run killed mid-write leaves either the old file or the new one, never half of one (and a
`.tmp-*` file that `remove_leftovers` clears). A write that runs out of space raises
`tflth.failures.DiskFull` naming the file; a file that cannot be read back (truncated, emptied,
bit-flipped: .npz files carry a CRC per array) raises `tflth.failures.DamagedFile` naming it.
"""
import base64
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib

import numpy as np

from tflth.failures import DamagedFile, disk_full, no_space

TMP_PREFIX = ".tmp-"
# What reading a damaged file raises (json: ValueError; np.load: BadZipFile, EOFError, zlib.error,
# ValueError; h5py: OSError). FileNotFoundError is not damage: a missing file keeps its own error.
_DAMAGE = (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile, zlib.error)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path in the target's folder; renames it onto `path` on success.

    `suffix` lets writers that check extensions (Keras wants ".weights.h5") accept it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except Exception as e:
        if no_space(e):
            raise disk_full(path, os.path.getsize(tmp) if os.path.exists(tmp) else None) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path, overwrite=False):
    """Yields a temporary folder beside `path` (hidden: `.tmp-<name>-*`); on success it is renamed
    to `path`, replacing an existing `path` only if `overwrite`. An interrupted write leaves no
    folder at `path`, and a failed one leaves nothing."""
    path = os.fspath(path).rstrip(os.sep) or os.sep
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f"{TMP_PREFIX}{os.path.basename(path)}-")
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; results are meant to be shared
        if os.path.exists(path):
            old = tempfile.mkdtemp(dir=parent, prefix=f".old-{os.path.basename(path)}-")
            os.replace(path, os.path.join(old, "x"))
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(os.path.join(old, "x"), path)  # the old one back, not neither
                raise
            finally:
                if not os.path.exists(os.path.join(old, "x")) or os.path.exists(path):
                    shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def reading(path, remedy=None, damage=_DAMAGE):
    """Turns an error of the kinds `damage` raised while reading `path` into DamagedFile naming it
    (a missing file, a folder, no permission keep their own errors). `remedy` replaces the default
    advice (remove it, rerun)."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except damage as e:
        raise DamagedFile(path, str(e).splitlines()[0] if str(e) else type(e).__name__, remedy) from e


def read_json(path):
    with reading(path), open(path) as f:
        return json.load(f)


def write_npz(path, arrays, compress=True):
    with atomic_path(path, suffix=".npz") as tmp:
        (np.savez_compressed if compress else np.savez)(tmp, **arrays)


def read_npz(path, remedy=None):
    """{name: array}; every array is read, so a damaged one fails its CRC check here."""
    with reading(path, remedy), np.load(path) as f:
        return {name: f[name] for name in f.files}


def write_masks(path, masks):
    """Masks are 0/1: stored as bool, a quarter of the bytes to compress (VGG-19's 20M)."""
    write_npz(path, {name: np.asarray(mask) != 0 for name, mask in masks.items()})


def read_masks(path, remedy=None):
    """{name: float32 mask} (files written as float32 before write_masks read the same)."""
    return {name: mask.astype(np.float32) for name, mask in read_npz(path, remedy).items()}


def save_weights(model, path):
    """Writes the model's weights; returns the file's SHA-256 (runs keep it in their metrics, so
    that a later load can tell a damaged file: HDF5 carries no checksum of its data)."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
        digest = sha256(tmp)
    return digest


def load_weights(model, path, digest=None, remedy=None):
    """`model.load_weights(path)`; DamagedFile naming `path` if HDF5 cannot read it or its SHA-256
    is not `digest` (where the run recorded one). (A file of another architecture keeps Keras'
    ValueError: that is not damage.)"""
    if digest is not None and os.path.exists(path) and sha256(path) != digest:
        raise DamagedFile(path, "its SHA-256 is not the one recorded when it was written", remedy)
    with reading(path, remedy, damage=OSError):
        model.load_weights(path)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remove_leftovers(folder):
    """Removes the `.tmp-*` files and folders that writes killed mid-way left under `folder`
    (call it only while no other process writes there: `tflth.runs.claim`). Returns them.
    (`.old-*` folders stay: one killed inside `atomic_dir`'s swap holds the only copy.)"""
    found = []
    for parent, dirs, files in os.walk(folder):
        found += [os.path.join(parent, name) for name in [*files, *dirs] if name.startswith(TMP_PREFIX)]
        dirs[:] = [d for d in dirs if not d.startswith(TMP_PREFIX)]
    for path in found:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return found


def pack_bits(flags):
    """A boolean vector as JSON: {"n", "bits": base64 of np.packbits} (10,000 flags in 1,668
    characters), for per-example results kept in metrics files."""
    flags = np.asarray(flags, dtype=bool).ravel()
    return {"n": int(flags.size), "bits": base64.b64encode(np.packbits(flags).tobytes()).decode("ascii")}


def unpack_bits(packed):
    """The boolean vector `pack_bits` stored; ValueError if the bytes do not hold n flags."""
    raw = np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8)
    if len(raw) != (int(packed["n"]) + 7) // 8:
        raise ValueError(f"packed bits: {len(raw)} bytes cannot hold exactly {packed['n']} flags (damaged?)")
    return np.unpackbits(raw, count=int(packed["n"])).astype(bool)
