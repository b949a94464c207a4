"""Speech → an audio byte stream, block by block, for HTTP clients: the bytes of each block leave as soon
as it is encoded, and the stream is a valid file of its format when it ends.

Formats (OpenAI's `response_format` names):
- `mp3` (44.1 kHz, 128 kb/s, ID3v2 tags), `opus` (Ogg/Opus, 48 kHz, 64 kb/s, Vorbis comments), `aac`
  (ADTS, 44.1 kHz, 128 kb/s), `flac` (44.1 kHz, 16-bit, Vorbis comments): PyAV's muxers writing to a
  sink that is not seekable, with FFmpeg's `flush_packets`, so every muxed packet is handed over at once
  (the default 32 KiB I/O buffer would hold back the first second and a half of MP3).
- `wav`: 44.1 kHz 16-bit, its header written first with "unknown" sizes (0xFFFFFFFF), as streaming WAV
  servers do; readers take the data to the end of the stream.
- `pcm`: raw 16-bit little-endian mono at 24 kHz, exactly what OpenAI defines, so a stock client plays it
  at the right speed (Echo speaks at 44.1 kHz; it is resampled here, statefully, block by block).

`speed` ≠ 1 is a pitch-preserving time stretch (FFmpeg's WSOLA `atempo` filter, chained for factors
below 0.5), applied in the stream too, so it changes when speech arrives, never its pitch.
Pure and synchronous: the caller runs `feed` off its event loop.
"""

from __future__ import annotations

import struct
from typing import Any

import av
import numpy as np

from modal_tts.output.encoding import Tags
from modal_tts.output.pcm import OPUS_RATE, SAMPLE_RATE, av_frames, clean

PCM_RATE = 24000  # OpenAI's `pcm`: 24 kHz, 16-bit signed little-endian, mono
STREAM_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_MUXED = {  # format: (muxer, encoder, rate, sample format, bit rate, encoder options)
    "mp3": ("mp3", "libmp3lame", SAMPLE_RATE, "fltp", 128_000, {}),
    "opus": ("ogg", "libopus", OPUS_RATE, "flt", 64_000, {"application": "audio", "compression_level": "5"}),
    "aac": ("adts", "aac", SAMPLE_RATE, "fltp", 128_000, {}),
    "flac": ("flac", "flac", SAMPLE_RATE, "s16", None, {}),
}
_STEP = 4096  # samples per frame handed to PyAV
_UNKNOWN = 0xFFFFFFFF


def _wav_header(rate: int) -> bytes:
    """A RIFF/WAVE header for 16-bit mono whose sizes say "to the end of the stream"."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", _UNKNOWN)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + (struct.pack("<I", _UNKNOWN))
    )


class _Sink:
    """Where a muxer writes: collected until taken. No `seek`, so FFmpeg writes as for a pipe."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _tempo_chain(speed: float) -> list[float]:
    """`atempo` factors whose product is `speed`, each within the filter's 0.5–100."""
    factors = []
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    return [*factors, speed]


class _Stretch:
    """A pitch-preserving time stretch of float mono at Echo's rate, streaming."""

    def __init__(self, speed: float) -> None:
        self.graph = av.filter.Graph()
        nodes = [self.graph.add_abuffer(format="flt", sample_rate=SAMPLE_RATE, layout="mono")]
        for factor in _tempo_chain(speed):
            nodes.append(self.graph.add("atempo", f"{factor:.6f}"))
        nodes.append(self.graph.add("aformat", "sample_fmts=flt:channel_layouts=mono"))
        nodes.append(self.graph.add("abuffersink"))
        self.graph.link_nodes(*nodes).configure()

    def _pull(self) -> np.ndarray:
        out = []
        while True:
            try:
                frame = self.graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1))
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def feed(self, pcm: np.ndarray) -> np.ndarray:
        for frame in av_frames(pcm, SAMPLE_RATE, _STEP):
            self.graph.push(frame)
        return self._pull()

    def close(self) -> np.ndarray:
        self.graph.push(None)
        return self._pull()


class StreamEncoder:
    """One response's audio: `feed` float32 mono 44.1 kHz blocks in order, each returning the bytes ready
    to send; `close` returns the rest (the encoder's tail and the container's end)."""

    def __init__(self, fmt: str, *, tags: Tags | None = None, speed: float = 1.0) -> None:
        if fmt not in STREAM_FORMATS:
            raise ValueError(f"unknown stream format {fmt!r}")
        self.format = fmt
        self.samples_in = 0  # at Echo's rate, before any stretch: the speech the engine made
        self._stretch = _Stretch(speed) if speed != 1.0 else None
        self._started = False
        self._container: Any = None
        self._resampler: av.AudioResampler | None = None
        if fmt in _MUXED:
            self._open_muxer(tags)
        elif fmt == "pcm":
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)

    def _open_muxer(self, tags: Tags | None) -> None:
        muxer, codec, rate, sample_format, bit_rate, codec_options = _MUXED[self.format]
        self._sink = _Sink()
        options = {"flush_packets": "1"}
        if muxer == "ogg":  # a page every 100 ms, not every second: the first words leave with their block
            options["page_duration"] = "100000"
        self._container = av.open(self._sink, "w", format=muxer, options=options, buffer_size=4096)
        stream = self._container.add_stream(codec, rate=rate, layout="mono")
        if tags is not None:  # Ogg takes its comments from the stream, the others from the container
            said = {
                "title": tags.title,
                "artist": tags.voice,
                "comment": tags.comment,
                "copyright": tags.licence,
            }
            (stream if muxer == "ogg" else self._container).metadata.update(said)
        stream.format = sample_format
        if bit_rate:
            stream.bit_rate = bit_rate
        stream.options = dict(codec_options)
        self._stream = stream
        # the encoder takes frames at its own rate and sample format: resampled here, statefully
        self._resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)

    def feed(self, pcm: np.ndarray) -> bytes:
        pcm = clean(pcm)
        self.samples_in += pcm.size
        if self._stretch is not None:
            pcm = self._stretch.feed(pcm)
        return self._encode(pcm)

    def close(self) -> bytes:
        out = b""
        if self._stretch is not None:
            out += self._encode(self._stretch.close())
        if self._container is not None:
            out += self._encode_frames(self._resampler.resample(None) if self._resampler else [])
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            return out + self._sink.take()
        if self._resampler is not None:  # pcm: the resampler's held samples
            out += b"".join(frame.to_ndarray().tobytes() for frame in self._resampler.resample(None))
        if not self._started and self.format == "wav":
            out = _wav_header(SAMPLE_RATE) + out
        return out

    def _encode(self, pcm: np.ndarray) -> bytes:
        if self.format == "wav":
            head = b"" if self._started else _wav_header(SAMPLE_RATE)
            self._started = True
            return head + (np.clip(pcm, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
        frames = []
        for frame in av_frames(pcm, SAMPLE_RATE, _STEP):
            assert self._resampler is not None
            frames.extend(self._resampler.resample(frame))
        if self.format == "pcm":
            return b"".join(frame.to_ndarray().astype("<i2").tobytes() for frame in frames)
        return self._encode_frames(frames)

    def _encode_frames(self, frames: list[av.AudioFrame]) -> bytes:
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()


def content_type(fmt: str) -> str:
    return CONTENT_TYPES[fmt]
