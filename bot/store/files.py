"""A voice's files on disk: where they live, how they are written whole, how a latent is read back.

voices/<guild_id>/<voice_id>/reference.flac   the upload, kept to re-encode after a model change
voices/<guild_id>/<voice_id>/latent.npy       float16 [T, 80]
voices/.staging/<voice_id>/                   an add being written; renamed into place when whole
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

REFERENCE = "reference.flac"
LATENT = "latent.npy"
STAGING = ".staging"
LEGACY_TMP_PREFIX = ".tmp-"  # where adds were staged before voices/.staging (schema 2 and older)


class DamagedLatent(Exception):
    """A latent file that is there but is not a whole float16 [T, D] array."""


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def latent_bytes(latent: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(latent, dtype=np.float16), allow_pickle=False)
    return buf.getvalue()


def _check(latent: np.ndarray) -> np.ndarray:
    if latent.dtype != np.float16 or latent.ndim != 2 or 0 in latent.shape:
        raise DamagedLatent(f"a {latent.dtype} array of shape {latent.shape}, not float16 [T, D]")
    return latent


def read_latent(path: Path) -> np.ndarray:
    """The saved latent; FileNotFoundError if it is gone, DamagedLatent if it is garbled or truncated."""
    try:
        return _check(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:  # what numpy says about a file that isn't a whole .npy
        raise DamagedLatent(str(exc)) from exc


def latent_problem(path: Path) -> str | None:
    """Why the latent at `path` can't be used, judged from its header and size alone (cheap enough for a
    doctor's pass over every voice); None when it looks whole."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            fmt = np.lib.format
            shape, _, dtype = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(f)
            data_starts = f.tell()
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except (ValueError, EOFError, OSError) as exc:
        return f"damaged ({exc})"
    if dtype != np.float16 or len(shape) != 2 or 0 in shape:
        return f"damaged (a {dtype} array of shape {shape})"
    expected = data_starts + int(np.prod(shape)) * dtype.itemsize
    return None if size == expected else f"damaged (truncated: {size} of {expected} bytes)"
