"""Synthetic test media: speech-like signals and every upload format the bot accepts, built in memory.

Everything here is deterministic (seeded) and short, so tests that use it stay fast. Encoding goes
through PyAV, the same library the bot decodes with, so no ffmpeg binary or sample files are needed.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from bot.audio.sample import speech_like as speech_like  # the tests' voice: the one users can try

SAMPLE_RATE = 44100


# --- signals ----------------------------------------------------------------------------------


def tone(
    seconds: float, freq: float = 220.0, *, amplitude: float = 0.5, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(
    seconds: float, *, dbfs: float = -70.0, sample_rate: int = SAMPLE_RATE, seed: int = 1
) -> np.ndarray:
    """White noise with the given RMS level (dBFS)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * sample_rate)) * 10 ** (dbfs / 20)).astype(np.float32)


# --- encoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How to write one upload format: PyAV muxer, audio codec, codec rate and channel layout."""

    muxer: str
    codec: str
    rate: int
    layout: str = "mono"
    options: tuple[tuple[str, str], ...] = ()
    bitrate: int | None = None
    video: str | None = None  # add a tiny video track with this encoder
    fmt: str = ""  # the `Reference.format` the bot should report


RECIPES: dict[str, Recipe] = {
    "wav": Recipe("wav", "pcm_s16le", 44100, fmt="wav"),
    "wav-24bit-stereo-48k": Recipe("wav", "pcm_s24le", 48000, "stereo", fmt="wav"),
    "mp3": Recipe("mp3", "libmp3lame", 44100, fmt="mp3"),
    "ogg-opus": Recipe("ogg", "libopus", 48000, "stereo", fmt="ogg/opus"),
    # what a Discord voice message is: mono 48 kHz Opus in Ogg
    "voice-message": Recipe("ogg", "libopus", 48000, "mono", (("application", "voip"),), fmt="ogg/opus"),
    # FFmpeg's own Vorbis encoder is "experimental" and stereo-only
    "ogg-vorbis": Recipe("ogg", "vorbis", 44100, "stereo", (("strict", "experimental"),), fmt="ogg/vorbis"),
    "m4a": Recipe("ipod", "aac", 44100, fmt="m4a/aac"),
    "flac": Recipe("flac", "flac", 44100, fmt="flac"),
    "webm": Recipe("webm", "libopus", 48000, fmt="webm/opus"),
    "mkv": Recipe("matroska", "aac", 44100, "stereo", fmt="mkv/aac"),
    "mp4": Recipe("mp4", "aac", 44100, video="mpeg4", fmt="mp4/aac"),
    "mov": Recipe("mov", "aac", 48000, "stereo", video="mpeg4", fmt="mov/aac"),
    "aiff": Recipe("aiff", "pcm_s16be", 22050, fmt="aiff"),
    "aac-adts": Recipe("adts", "aac", 32000, fmt="aac"),
    "caf": Recipe("caf", "pcm_s16le", 44100, fmt="caf/pcm"),
    "wma": Recipe("asf", "wmav2", 44100, bitrate=64000, fmt="wma/wmav2"),
    "avi": Recipe("avi", "libmp3lame", 44100, video="mpeg4", fmt="avi/mp3"),
}


def encode(pcm: np.ndarray, kind: str, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Write mono float32 `pcm` as the upload format `kind` (a key of RECIPES), in memory."""
    recipe = RECIPES[kind]
    buf = io.BytesIO()
    with av.open(buf, "w", format=recipe.muxer) as out:
        stream = out.add_stream(
            recipe.codec, rate=recipe.rate, layout=recipe.layout, options=dict(recipe.options)
        )
        if recipe.bitrate:
            stream.bit_rate = recipe.bitrate
        video = _add_video(out, recipe.video) if recipe.video else None
        stereo = recipe.layout == "stereo"
        samples = np.vstack([pcm, pcm]) if stereo else pcm[None, :]
        step = 1024
        for start in range(0, samples.shape[1], step):
            block = np.ascontiguousarray(samples[:, start : start + step].T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout=recipe.layout)
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if video is not None:
            _write_video(out, video, seconds=len(pcm) / sample_rate)
    return buf.getvalue()


def video_only(muxer: str = "mp4", codec: str = "mpeg4", seconds: float = 1.0) -> bytes:
    """A container holding a tiny video track and no audio at all."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=muxer) as out:
        stream = _add_video(out, codec)
        _write_video(out, stream, seconds=seconds)
    return buf.getvalue()


def _add_video(out: av.container.OutputContainer, codec: str) -> av.VideoStream:
    stream = out.add_stream(codec, rate=10)
    stream.width = stream.height = 32
    stream.pix_fmt = "yuv420p"
    return stream


def _write_video(out: av.container.OutputContainer, stream: av.VideoStream, seconds: float) -> None:
    for i in range(max(1, round(seconds * 10))):
        image = np.full((32, 32, 3), (i * 20) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, 10)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def wav_bytes(
    pcm: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    claimed_rate: int | None = None,
    channels: int = 1,
    riff_size: int | None = None,
    data_size: int | None = None,
) -> bytes:
    """A 16-bit PCM WAV written by hand, so tests can make its header lie (sizes, rate, channels)."""
    body = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    rate = claimed_rate or sample_rate
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    data_len = len(body) if data_size is None else data_size
    riff_len = 4 + 8 + len(fmt) + 8 + len(body) if riff_size is None else riff_size
    return (
        b"RIFF"
        + struct.pack("<I", riff_len)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_len)
        + body
    )


# --- decoding (to check what the bot wrote) -----------------------------------------------------


def frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """Any decoded audio frame as float32 (channels, samples) in [-1, 1]."""
    samples = frame.to_ndarray()
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        samples = (samples.astype(np.float64) - (info.max + info.min + 1) / 2) / (info.max + 1)
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        samples = samples.reshape(-1, channels).T
    return samples.reshape(channels, -1).astype(np.float32)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of `data`: float32 (channels, samples) and its sample rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        parts = [frame_to_float(frame) for frame in container.decode(stream)]
        rate = stream.rate
    if not parts:
        return np.zeros((1, 0), np.float32), rate
    return np.concatenate(parts, axis=1), rate


def decode_opus_packets_each(packets: Iterable[bytes]) -> list[np.ndarray]:
    """Decode raw Opus packets (no container) one by one: float32 (2, samples) per packet."""
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate = 48000
    ctx.layout = "stereo"
    out = []
    for data in packets:
        arrays = [frame_to_float(f) for f in ctx.decode(av.Packet(data))]
        out.append(np.concatenate(arrays, axis=1) if arrays else np.zeros((2, 0), np.float32))
    return out


def decode_opus_packets(packets: Iterable[bytes]) -> np.ndarray:
    """Decode raw 48 kHz stereo Opus packets into one float32 (2, samples) array."""
    each = decode_opus_packets_each(packets)
    return np.concatenate(each, axis=1) if each else np.zeros((2, 0), np.float32)


def resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited enough for comparisons: linear interpolation onto the new time grid."""
    n = round(len(pcm) * dst / src)
    return np.interp(np.arange(n) * src / dst, np.arange(len(pcm)), pcm).astype(np.float32)
