"""Speech level, stitching synthesised chunks into one clip, and a look-ahead peak limiter.

Loudness of spoken output: -20 dBFS RMS over voiced 10 ms frames (a simple speech-level measure in
the spirit of ITU-T P.56), with a look-ahead peak limiter at -1 dBFS so nothing clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from modal_tts.output.pcm import SAMPLE_RATE, dbfs, frame_rms

# stitch(): loudness target, limiter ceiling and timings.
TARGET_SPEECH_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
CROSSFADE_S = 0.030
PAUSE_S = 0.250  # between chunks, measured from the end of one's voice to the start of the next
EDGE_PAD_S = 0.100  # kept before the first and after the last voiced frame
_VOICE_FRAME_S = 0.010
_VOICE_GATE_ABS_DBFS = -60.0
_VOICE_GATE_REL_DB = 40.0  # frames this far below the loudest one count as silence
_MAX_GAIN_DB = 40.0


def _fade(n: int) -> np.ndarray:
    """Equal-power fade-in of n samples (sin 0→π/2); its reverse cos curve fades out."""
    return np.sin(np.linspace(0.0, np.pi / 2, n, dtype=np.float64)).astype(np.float32)


def _voice_gate(frame_db: Iterable[np.ndarray]) -> float | None:
    loudest = max((float(np.max(f)) for f in frame_db if f.size), default=-np.inf)
    if loudest < _VOICE_GATE_ABS_DBFS:
        return None
    return max(_VOICE_GATE_ABS_DBFS, loudest - _VOICE_GATE_REL_DB)


def _frame_db(pcm: np.ndarray, frame: int) -> np.ndarray:
    return 20 * np.log10(np.maximum(frame_rms(pcm, frame), 1e-9))


def speech_level_dbfs(pcm: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> float:
    """Speech level: RMS over voiced 10 ms frames (within 40 dB of the loudest, above -60 dBFS)."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    frame = max(1, round(_VOICE_FRAME_S * sample_rate))
    frame_db = _frame_db(pcm, frame)
    gate = _voice_gate([frame_db])
    if gate is None:
        return -120.0
    rms = frame_rms(pcm, frame)[frame_db >= gate]
    return dbfs(float(np.sqrt(np.mean(rms**2))))


def _segment(pcm: np.ndarray, start: int, stop: int) -> np.ndarray:
    """pcm[start:stop] with zeros where the range runs past either end."""
    out = np.zeros(stop - start, dtype=np.float32)
    lo, hi = max(start, 0), min(stop, pcm.size)
    if hi > lo:
        out[lo - start : hi - start] = pcm[lo:hi]
    return out


def _limit_peaks(pcm: np.ndarray, ceiling: float, sample_rate: int) -> np.ndarray:
    """Look-ahead limiter: 1 ms blocks, gain held ±5 ms around each peak, ~50 ms release."""
    block = max(1, round(0.001 * sample_rate))
    n_blocks = math.ceil(pcm.size / block)
    padded = np.zeros(n_blocks * block, dtype=np.float32)
    padded[: pcm.size] = np.abs(pcm)
    need = np.minimum(1.0, ceiling / np.maximum(padded.reshape(n_blocks, block).max(axis=1), 1e-9))
    if need.min() >= 1.0:
        return pcm
    gain = need.copy()
    for shift in range(1, 6):
        gain[shift:] = np.minimum(gain[shift:], need[:-shift])
        gain[:-shift] = np.minimum(gain[:-shift], need[shift:])
    release = 1 - math.exp(-1 / 50)  # per 1 ms block: recovers with a ~50 ms time constant
    smoothed = gain.tolist()
    done = 0
    for start in np.flatnonzero(gain < 1.0).tolist():
        i = max(start + 1, done)
        while i < n_blocks and smoothed[i - 1] < 0.9999:  # walk each recovery to its end
            smoothed[i] = min(smoothed[i], smoothed[i - 1] + (1.0 - smoothed[i - 1]) * release)
            i += 1
        done = i
    gain = np.asarray(smoothed)
    # interpolate between block centres, but only where some gain is reduced (the rest is 1)
    reduced = gain < 1.0
    reduced[:-1] |= reduced[1:]
    reduced[1:] |= reduced[:-1]
    samples = (np.flatnonzero(reduced)[:, None] * block + np.arange(block)).reshape(-1)
    samples = samples[samples < pcm.size]
    centres = (np.arange(n_blocks) + 0.5) * block
    out = pcm.astype(np.float32, copy=True)
    out[samples] *= np.interp(samples, centres, gain).astype(np.float32)
    return np.clip(out, -ceiling, ceiling, out=out)


def stitch(chunks: Sequence[np.ndarray], *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Join synthesised chunks into one clip ready to encode.

    Silence at both ends is trimmed to `EDGE_PAD_S`; consecutive chunks are trimmed so that
    `PAUSE_S` separates one's last voiced frame from the next one's first, and overlap by
    `CROSSFADE_S` with an equal-power crossfade (their room tone blends, no click). The result is
    brought to `TARGET_SPEECH_DBFS` (see `speech_level_dbfs`) with peaks limited to
    `PEAK_CEILING_DBFS`. Chunks with nothing audible are dropped; if none is audible the result is
    empty. Returns float32 mono.
    """
    frame = max(1, round(_VOICE_FRAME_S * sample_rate))
    edge_fade = _fade(max(1, round(0.005 * sample_rate)))
    arrays = []
    for chunk in chunks:
        a = np.array(chunk, dtype=np.float32).reshape(-1)  # a copy: the caller's stays as it was
        if not np.isfinite(a).all():
            np.nan_to_num(a, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if a.size >= 2 * edge_fade.size:
            # a chunk that stops mid-word would click against the padding: fade its raw ends
            a[: edge_fade.size] *= edge_fade
            a[-edge_fade.size :] *= edge_fade[::-1]
        if a.size:
            arrays.append(a)
    frame_dbs = [_frame_db(a, frame) for a in arrays]
    gate = _voice_gate(frame_dbs)
    if gate is None:
        return np.zeros(0, dtype=np.float32)
    loud = [(a, np.flatnonzero(f >= gate)) for a, f in zip(arrays, frame_dbs, strict=True)]
    voiced = [(a, v[0] * frame, min(a.size, (v[-1] + 1) * frame)) for a, v in loud if v.size]

    crossfade = max(1, round(CROSSFADE_S * sample_rate))
    edge = round(EDGE_PAD_S * sample_rate)
    join_pad = round((PAUSE_S * sample_rate + crossfade) / 2)
    fade_in = _fade(crossfade)
    fade_out = fade_in[::-1]
    out = np.zeros(0, dtype=np.float32)
    for i, (a, start, stop) in enumerate(voiced):
        lead = edge if i == 0 else join_pad
        tail = edge if i == len(voiced) - 1 else join_pad
        seg = _segment(a, start - lead, stop + tail)
        if out.size == 0:
            out = seg
            continue
        overlap = min(crossfade, out.size, seg.size)
        mixed = out[-overlap:] * fade_out[-overlap:] + seg[:overlap] * fade_in[:overlap]
        out = np.concatenate([out[:-overlap], mixed, seg[overlap:]])

    ends = min(max(1, round(0.01 * sample_rate)), out.size // 2)
    if ends:
        out[:ends] *= _fade(ends)
        out[-ends:] *= _fade(ends)[::-1]
    level = speech_level_dbfs(out, sample_rate=sample_rate)
    gain = 10 ** (min(TARGET_SPEECH_DBFS - level, _MAX_GAIN_DB) / 20)
    ceiling = 10 ** (PEAK_CEILING_DBFS / 20)
    out *= np.float32(gain)
    return _limit_peaks(out, ceiling, sample_rate)
