"""What every output module shares: the sample rates, level measures and PCM → PyAV frames."""

from __future__ import annotations

import math
from collections.abc import Iterator

import av
import numpy as np

from modal_tts.params import SAMPLE_RATE as SAMPLE_RATE  # Echo's rate: references in, speech out

OPUS_RATE = 48000
OPUS_FRAME_SAMPLES = 960  # one 20 ms Opus frame at 48 kHz, what Discord's voice gateway expects


def dbfs(value: float) -> float:
    """Level of an amplitude in dB below full scale; -120 for anything under -120 dB."""
    return 20 * math.log10(value) if value > 1e-6 else -120.0


def frame_rms(pcm: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive `frame`-sample frames (the last, partial one included)."""
    whole = pcm.size // frame * frame
    squares = np.square(pcm, dtype=np.float32)
    energy = np.add.reduce(squares[:whole].reshape(-1, frame), axis=1, dtype=np.float64)
    counts = np.full(energy.size, frame, dtype=np.float64)
    if whole < pcm.size:
        energy = np.append(energy, np.sum(squares[whole:], dtype=np.float64))
        counts = np.append(counts, pcm.size - whole)
    return np.sqrt(energy / counts)


def peak(pcm: np.ndarray) -> float:
    """Largest absolute sample, 0.0 for an empty clip."""
    return max(float(pcm.max()), -float(pcm.min())) if pcm.size else 0.0


def clean(pcm: np.ndarray) -> np.ndarray:
    """Mono float32 in [-1, 1] with NaN and infinities zeroed: what the encoders may be given."""
    return np.clip(np.nan_to_num(np.asarray(pcm, dtype=np.float32).reshape(-1)), -1.0, 1.0)


def av_frames(
    pcm: np.ndarray, sample_rate: int, step: int, *, stereo: bool = False
) -> Iterator[av.AudioFrame]:
    """Packed float frames of ≤`step` samples; `stereo` copies the mono signal to both sides
    (FFmpeg's own mono→stereo upmix would lower it by 3 dB)."""
    for start in range(0, pcm.size, step):
        block = np.asarray(pcm[start : start + step], dtype=np.float32)
        if stereo:
            block = np.repeat(block, 2)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(block)[None, :], format="flt", layout="stereo" if stereo else "mono"
        )
        frame.sample_rate = sample_rate
        yield frame
