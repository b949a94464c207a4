"""Audio helpers for voice tests: Opus packets from PyAV's libopus (no system libopus needed), a
discord.py ``AudioSource`` that plays them, test signals, and alignment of what the fake heard
against what was played.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import discord
import numpy as np

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz, the frame discord.py sends every 20 ms


def chirp(
    seconds: float, start_hz: float = 440.0, end_hz: float = 660.0, amplitude: float = 0.4
) -> np.ndarray:
    """A linear sweep from ``start_hz`` to ``end_hz``: float32 mono at 48 kHz (a signal with one
    unambiguous alignment, unlike a steady tone)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rate = (end_hz - start_hz) / seconds
    phase = 2 * np.pi * (start_hz * t + rate * t * t / 2)
    return (amplitude * np.sin(phase)).astype(np.float32)


def encode_opus(pcm: np.ndarray, *, bitrate: int = 128_000) -> list[bytes]:
    """Encode float32 PCM at 48 kHz (mono ``(n,)`` or stereo ``(n, 2)``) to 20 ms stereo Opus
    packets with PyAV's libopus encoder; the last frame is zero-padded."""
    stereo = np.repeat(pcm[:, None], 2, axis=1) if pcm.ndim == 1 else pcm
    ints = (np.clip(stereo, -1.0, 1.0) * 32767).astype(np.int16)
    padding = (-len(ints)) % FRAME_SAMPLES
    ints = np.pad(ints, ((0, padding), (0, 0)))
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.bit_rate = bitrate
    encoder.open()
    packets: list[bytes] = []
    for start in range(0, len(ints), FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(ints[start : start + FRAME_SAMPLES]).reshape(1, -1),
            format="s16",
            layout="stereo",
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        packets.extend(bytes(p) for p in encoder.encode(frame))
    packets.extend(bytes(p) for p in encoder.encode(None))
    return packets


class OpusPacketSource(discord.AudioSource):
    """Plays pre-encoded 20 ms Opus packets; ``is_opus()`` is True so discord.py sends them as-is."""

    def __init__(self, packets: Iterable[bytes]) -> None:
        self._packets: Iterator[bytes] = iter(packets)
        self.sent = 0

    def read(self) -> bytes:
        packet = next(self._packets, b"")
        if packet:
            self.sent += 1
        return packet

    def is_opus(self) -> bool:
        return True


def align(reference: np.ndarray, received: np.ndarray, *, max_lag: int = SAMPLE_RATE) -> tuple[int, float]:
    """Find where ``reference`` sits in ``received`` and how well it matches.

    Both are mono or stereo float arrays at the same rate (stereo is averaged to mono). Returns
    ``(lag, correlation)``: ``received[lag:lag + len(reference)]`` best matches ``reference``
    (lag may be negative when the start was cut), and the normalised correlation of that
    overlap (1.0 = identical shape).
    """
    ref = reference.mean(axis=1) if reference.ndim == 2 else reference
    got = received.mean(axis=1) if received.ndim == 2 else received
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(ref) + len(got))))
    spectrum = np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size))
    xcorr = np.fft.irfft(spectrum, size)
    lags = np.concatenate([np.arange(0, len(got)), np.arange(-len(ref) + 1, 0)])
    values = np.concatenate([xcorr[: len(got)], xcorr[size - len(ref) + 1 :]])
    keep = np.abs(lags) <= max_lag
    lag = int(lags[keep][np.argmax(values[keep])])
    start_ref, start_got = max(0, -lag), max(0, lag)
    length = min(len(ref) - start_ref, len(got) - start_got)
    if length <= 0:
        return lag, 0.0
    a = ref[start_ref : start_ref + length]
    b = got[start_got : start_got + length]
    denominator = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return lag, (float(np.dot(a, b)) / denominator if denominator else 0.0)
