"""Echo's long mid-sentence silences: found in decoded audio so that the block can be sampled again.

Echo sometimes stops for a second or more in the middle of a sentence and then carries on. The pause is
in the latents the sampler drew, so fresh noise for that block almost always removes it. What counts:
a run of quiet 20 ms frames at least `min_seconds` long with speech both before it (anywhere in the
chunk so far) and after it (in the block being checked). Silence before the first word and after the
last is Echo's normal lead-in and tail, never a reason to sample again.

Quiet is relative to the chunk's own speech: a frame more than `QUIET_BELOW_DB` under the chunk's loud
frames (its 95th-percentile frame level), or under an absolute floor. Natural pauses between sentences
are 0.3–0.8 s, so the default 1 s rarely fires on speech that is fine.

Numpy only: the engine runs it on each decoded block; tests and the benchmark call it directly.
"""

from __future__ import annotations

import numpy as np

from modal_tts.params import SAMPLE_RATE

FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms
QUIET_BELOW_DB = 35.0
QUIET_FLOOR = 10 ** (-60.0 / 20)  # -60 dBFS: quiet whatever the speech level
LOUD_PERCENTILE = 95


def frame_levels(audio: np.ndarray) -> np.ndarray:
    """RMS of each whole 20 ms frame."""
    frames = audio[: audio.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


def long_silence(
    audio: np.ndarray, min_seconds: float, *, checked_from: int = 0
) -> tuple[float, float] | None:
    """The first silence of at least `min_seconds` inside speech that ends at or after sample
    `checked_from` (the start of the block being checked), as (start, end) in seconds; None if there is
    none."""
    levels = frame_levels(np.asarray(audio, dtype=np.float32))
    if levels.size == 0:
        return None
    loud = float(np.percentile(levels, LOUD_PERCENTILE))
    quiet = levels < max(loud * 10 ** (-QUIET_BELOW_DB / 20), QUIET_FLOOR)
    voiced = np.flatnonzero(~quiet)
    if voiced.size < 2:
        return None
    need = int(np.ceil(min_seconds * SAMPLE_RATE / FRAME_SAMPLES))
    first_checked = checked_from // FRAME_SAMPLES
    # Gaps between consecutive voiced frames are the silences with speech on both sides.
    gaps = np.diff(voiced) - 1
    for i in np.flatnonzero(gaps >= need):
        start, end = voiced[i] + 1, voiced[i + 1]
        if end >= first_checked:
            return start * FRAME_SAMPLES / SAMPLE_RATE, end * FRAME_SAMPLES / SAMPLE_RATE
    return None
