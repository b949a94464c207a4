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

from modal_tts import params

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


def check_latent(latent: np.ndarray) -> np.ndarray:
    """A latent the engine can use: float16 [T, 80], T a multiple of 4 up to 6400, every value finite
    (the engine's own rule, `modal_tts.params.check_latent`); else DamagedLatent. Checked on load, on
    import and before a request is queued, so one voice's damage never reaches a shared GPU batch."""
    if latent.dtype != np.float16:
        raise DamagedLatent(f"a {latent.dtype} array of shape {latent.shape}, not float16 [T, 80]")
    try:
        return params.check_latent(latent)
    except params.InvalidLatent as exc:
        raise DamagedLatent(str(exc)) from None


def read_latent(path: Path) -> np.ndarray:
    """The saved latent; FileNotFoundError if it is gone, DamagedLatent if it is garbled or truncated."""
    try:
        return check_latent(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:  # what numpy says about a file that isn't a whole .npy
        raise DamagedLatent(str(exc)) from exc


def read_latent_bytes(data: bytes) -> np.ndarray:
    """A latent kept as .npy bytes (a database row); DamagedLatent if they are not a usable one."""
    try:
        return check_latent(np.load(io.BytesIO(data), allow_pickle=False))
    except (ValueError, EOFError, OSError) as exc:
        raise DamagedLatent(str(exc)) from exc


def latent_bytes_problem(data: bytes) -> str | None:
    """Why the latent kept as `data` can't be used (every value checked), or None."""
    try:
        read_latent_bytes(data)
    except DamagedLatent as exc:
        return f"damaged ({exc})"
    return None


def latent_problem(path: Path, *, values: bool = False) -> str | None:
    """Why the latent at `path` can't be used, judged from its header and size (cheap enough for any
    pass over every voice), and with `values` from every value too (NaN or infinite: doctor's audit);
    None when it is whole."""
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
    if dtype != np.float16 or len(shape) != 2 or shape[1] != params.LATENT_SIZE:
        return f"damaged (a {dtype} array of shape {shape}, not float16 [T, {params.LATENT_SIZE}])"
    if not 0 < shape[0] <= params.MAX_SPEAKER_LATENT_LENGTH or shape[0] % params.SPEAKER_PATCH_SIZE:
        return f"damaged ({shape[0]} frames: not a multiple of {params.SPEAKER_PATCH_SIZE} up to 6400)"
    expected = data_starts + int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        return f"damaged (truncated: {size} of {expected} bytes)"
    if values and not np.isfinite(np.load(path, mmap_mode="r", allow_pickle=False)).all():
        return "damaged (it holds NaN or infinite values)"
    return None
