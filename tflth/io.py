"""Atomic writes: write to a temporary file beside the target, then rename.

A run killed mid-write leaves either the old file or the new one, never half of one.
"""
import base64
import contextlib
import json
import os
import shutil
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path in the target's folder; renames it onto `path` on success.

    `suffix` lets writers that check extensions (Keras wants ".weights.h5") accept it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
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
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(path)}-")
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
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_npz(path, arrays, compress=True):
    with atomic_path(path, suffix=".npz") as tmp:
        (np.savez_compressed if compress else np.savez)(tmp, **arrays)


def read_npz(path):
    with np.load(path) as f:
        return {name: f[name] for name in f.files}


def write_masks(path, masks):
    """Masks are 0/1: stored as bool, a quarter of the bytes to compress (VGG-19's 20M)."""
    write_npz(path, {name: np.asarray(mask) != 0 for name, mask in masks.items()})


def read_masks(path):
    """{name: float32 mask} (files written as float32 before write_masks read the same)."""
    return {name: mask.astype(np.float32) for name, mask in read_npz(path).items()}


def save_weights(model, path):
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


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
