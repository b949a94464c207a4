"""Reference uploads → clean PCM: bounded PyAV decode, resample to mono 44.1 kHz, validation.

Decoding is bounded: it stops just past 5 min of output, after `_DECODE_MAX_PACKETS` packets or
`_DECODE_TIME_LIMIT_S`, whatever a header claims.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import av
import numpy as np

from bot.audio.sniff import Kind, sniff
from bot.errors import (
    FileTooLarge,
    NoAudioStream,
    ReferenceSilent,
    ReferenceTooLong,
    ReferenceTooShort,
    Undecodable,
)
from modal_tts.output.pcm import SAMPLE_RATE, dbfs, frame_rms, peak

MIN_REFERENCE_S = 5.0
MAX_REFERENCE_S = 300.0

# A reference up to this much over the limit is trimmed rather than refused ("5 min" recordings).
_REFERENCE_SLACK_S = 0.5
# A reference this much under the minimum still passes (codec padding/trim of a "5 s" clip).
_SHORT_TOLERANCE_S = 0.05
_DECODE_TIME_LIMIT_S = 20.0
_DECODE_MAX_PACKETS = 200_000  # 5 min of the smallest Opus frames (2.5 ms) is 120 000
# Legit codecs give ≥110 samples (2.5 ms) per packet; headers that slice audio into 1-sample
# packets would cost seconds of per-packet overhead, so such files are dropped early.
_TINY_PACKETS_AFTER = 20_000
_MIN_SAMPLES_PER_PACKET = 32
_DECODE_MAX_ERRORS = 25
_MIN_INPUT_RATE, _MAX_INPUT_RATE = 1000, 768_000
_MAX_INPUT_CHANNELS = 64

# Silence: quieter than this peak, or the loudest second quieter than this RMS, or less than
# _MIN_ACTIVE_S of 20 ms frames above _ACTIVE_DBFS (a lone click is not a voice).
SILENCE_PEAK_DBFS = -50.0
SILENCE_WINDOW_RMS_DBFS = -60.0
_ACTIVE_DBFS = -60.0
_MIN_ACTIVE_S = 0.5
REFERENCE_PEAK = 0.95

_PYAV_ERRORS = (
    av.FFmpegError,
    ValueError,
    TypeError,
    RuntimeError,
    OSError,
    EOFError,
    IndexError,
    OverflowError,
    ZeroDivisionError,
)


@dataclass(frozen=True, eq=False)
class Reference:
    """A decoded, validated reference clip: float32 mono at 44.1 kHz, peak-normalised."""

    pcm: np.ndarray
    duration_s: float
    format: str  # what the upload was, e.g. "ogg/opus", "mp3", "m4a/aac"


def _codec_family(stream: av.AudioStream) -> str:
    name = stream.codec_context.codec.canonical_name
    return "pcm" if name.startswith("pcm_") else name


def _declared_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    """The duration the file's headers claim (may be a lie or missing: 0.0)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _estimate_total_seconds(decoded_s: float, declared_s: float, pos: int, size: int) -> float:
    """How long a too-long upload really is, trusting its header only if its size agrees."""
    by_bytes = decoded_s * size / pos if pos > 0 else 0.0
    if declared_s >= decoded_s and (by_bytes <= 0 or declared_s <= 3 * by_bytes + 5):
        return declared_s
    return max(by_bytes, decoded_s)


class _Resampler:
    """An av.AudioResampler to mono 44.1 kHz float that follows format changes mid-stream."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, int, int] | None = None

    def push(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        if frame is not None:
            key = (frame.format.name, frame.layout.nb_channels, frame.sample_rate)
            if key != self._key:
                out += self.push(None)
                self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                self._key = key
            frame.pts = None  # timestamps from the file are not trusted for anything
        if self._resampler is None:
            return out
        out += [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if frame is None:
            self._resampler, self._key = None, None
        return out


def _decode_reference(data: bytes, kind: Kind) -> tuple[np.ndarray, str]:
    """Decode the best audio stream of `data` to mono 44.1 kHz float32, bounded in time and size."""
    limit = round((MAX_REFERENCE_S + _REFERENCE_SLACK_S) * SAMPLE_RATE)
    deadline = time.monotonic() + _DECODE_TIME_LIMIT_S
    try:
        container = av.open(io.BytesIO(data), mode="r", format=kind.demuxer, metadata_errors="ignore")
    except _PYAV_ERRORS as exc:
        raise Undecodable(f"{kind.demuxer}: cannot open: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise NoAudioStream(kind.label)
        try:
            # a stream whose codec FFmpeg can't decode has no codec context
            decodable = [s for s in container.streams.audio if s.codec_context is not None]
            if not decodable:
                raise Undecodable(f"{kind.demuxer}: no decoder for its audio codec")
            best = container.streams.best("audio")
            stream = best if best in decodable else decodable[0]
            family = _codec_family(stream)
            declared = _declared_seconds(container, stream)
        except _PYAV_ERRORS as exc:
            raise Undecodable(f"{kind.demuxer}: bad stream: {exc}") from exc
        container_name = kind.label.lower()
        fmt = container_name if family == kind.plain else f"{container_name}/{family}"

        resampler = _Resampler()
        parts: list[np.ndarray] = []
        produced = packets = errors = last_pos = 0
        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except _PYAV_ERRORS as exc:
                if produced:
                    break  # a damaged or cut-off tail: keep what came before, like ffmpeg does
                raise Undecodable(f"{fmt}: demux failed: {exc}") from exc
            packets += 1
            if (
                packets > _DECODE_MAX_PACKETS
                or time.monotonic() > deadline
                or (
                    packets == _TINY_PACKETS_AFTER
                    and produced < _MIN_SAMPLES_PER_PACKET * _TINY_PACKETS_AFTER
                )
            ):
                raise Undecodable(f"{fmt}: gave up after {packets} packets, {produced} samples")
            if packet.pos is not None and packet.pos > 0:
                last_pos = packet.pos
            try:
                frames = packet.decode()
            except _PYAV_ERRORS as exc:
                errors += 1
                if errors > _DECODE_MAX_ERRORS:
                    raise Undecodable(f"{fmt}: {errors} decode errors, last: {exc}") from exc
                continue
            for frame in frames:
                if not (_MIN_INPUT_RATE <= frame.sample_rate <= _MAX_INPUT_RATE) or not (
                    0 < frame.layout.nb_channels <= _MAX_INPUT_CHANNELS
                ):
                    raise Undecodable(f"{fmt}: {frame.sample_rate} Hz, {frame.layout.nb_channels} channels")
                if frame.samples * SAMPLE_RATE / frame.sample_rate > limit:
                    produced = limit + 1  # one frame longer than a whole reference
                    break
                try:
                    pieces = resampler.push(frame)
                except _PYAV_ERRORS as exc:
                    raise Undecodable(f"{fmt}: resample failed: {exc}") from exc
                parts += pieces
                produced += sum(p.size for p in pieces)
            if produced > limit:
                decoded_s = produced / SAMPLE_RATE
                total = _estimate_total_seconds(decoded_s, declared, last_pos, len(data))
                raise ReferenceTooLong(max(total, decoded_s), MAX_REFERENCE_S)
        try:
            parts += resampler.push(None)
        except _PYAV_ERRORS as exc:
            raise Undecodable(f"{fmt}: resample flush failed: {exc}") from exc
    if not parts or not sum(p.size for p in parts):
        raise Undecodable(f"{fmt}: no audio could be decoded ({packets} packets, {errors} errors)")
    pcm = np.concatenate(parts).astype(np.float32, copy=False)
    return np.ascontiguousarray(pcm[: round(MAX_REFERENCE_S * SAMPLE_RATE)]), fmt


def _check_not_silent(pcm: np.ndarray) -> None:
    peak_dbfs = dbfs(peak(pcm))
    frames = frame_rms(pcm, round(0.02 * SAMPLE_RATE))  # 20 ms
    active_s = np.count_nonzero(frames >= 10 ** (_ACTIVE_DBFS / 20)) * 0.02
    window = min(50, frames.size)  # 1 s of 20 ms frames
    energy = np.concatenate([[0.0], np.cumsum(frames**2)])
    loudest_rms = math.sqrt(max(float(np.max(energy[window:] - energy[:-window])) / window, 0.0))
    if (
        peak_dbfs < SILENCE_PEAK_DBFS
        or dbfs(loudest_rms) < SILENCE_WINDOW_RMS_DBFS
        or active_s < _MIN_ACTIVE_S
    ):
        raise ReferenceSilent(peak_dbfs)


def load_reference(data: bytes, *, max_bytes: int) -> Reference:
    """Validate and decode an uploaded reference clip (any common audio or video format).

    Raises a `BadReference` subclass (FileTooLarge, NotAudio, Undecodable, NoAudioStream,
    ReferenceTooShort, ReferenceTooLong, ReferenceSilent) for anything unusable; never a PyAV error.
    """
    data = bytes(data)
    if len(data) > max_bytes:
        raise FileTooLarge(len(data), max_bytes)
    kind = sniff(data)
    pcm, fmt = _decode_reference(data, kind)
    duration = pcm.size / SAMPLE_RATE
    if duration < MIN_REFERENCE_S - _SHORT_TOLERANCE_S:
        raise ReferenceTooShort(duration, MIN_REFERENCE_S)
    if not np.isfinite(pcm).all():
        np.nan_to_num(pcm, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    pcm -= np.float32(np.mean(pcm, dtype=np.float64))  # DC offset eats headroom, fools checks
    _check_not_silent(pcm)
    pcm *= np.float32(REFERENCE_PEAK / peak(pcm))
    return Reference(pcm=pcm, duration_s=duration, format=fmt)
