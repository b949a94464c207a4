"""Audio in and out: reference uploads → clean PCM, synthesised chunks → files and Opus packets.

Everything here is pure and synchronous (PyAV + numpy, no ffmpeg binary, no temp files, no torch);
the bot runs it in a worker thread. Internally audio is float32 mono at Echo's 44.1 kHz.

Choices worth knowing:
- Uploads are sniffed from their magic bytes and opened with that one demuxer forced, so FFmpeg never
  probes its way into playlist/concat demuxers that could read other files, and non-audio files are
  named ("a PNG image") without FFmpeg seeing them.
- Decoding is bounded: it stops just past 5 min of output, after `_DECODE_MAX_PACKETS` packets or
  `_DECODE_TIME_LIMIT_S`, whatever a header claims.
- Loudness of spoken output: -20 dBFS RMS over voiced 10 ms frames (a simple speech-level measure
  in the spirit of ITU-T P.56), with a look-ahead peak limiter at -1 dBFS so nothing clips.
- Tags: Ogg/Opus gets Vorbis comments, MP3 gets ID3v2.3, WAV gets a RIFF INFO list (written by
  FFmpeg; mutagen can't write INFO) and an ID3 chunk (written by mutagen).
"""

from __future__ import annotations

import base64
import codecs
import io
import math
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import av
import numpy as np
from mutagen.flac import FLAC
from mutagen.id3 import COMM, ID3, TIT2, TPE1, TXXX, WCOP
from mutagen.mp3 import MP3
from mutagen.oggopus import OggOpus
from mutagen.wave import WAVE

from bot.errors import (
    FileTooLarge,
    NoAudioStream,
    NotAudio,
    OutputTooLarge,
    ReferenceSilent,
    ReferenceTooLong,
    ReferenceTooShort,
    Undecodable,
)

SAMPLE_RATE = 44100  # Echo's rate: references in, speech out
MIN_REFERENCE_S = 5.0
MAX_REFERENCE_S = 300.0

OPUS_RATE = 48000
OPUS_FRAME_SAMPLES = 960  # one 20 ms Opus frame at 48 kHz, what Discord's voice gateway expects

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

FORMATS = ("ogg", "mp3", "wav")
# The first rung is the default bitrate; fit_to_limit walks down from it until the file fits.
BITRATE_LADDER: dict[str, tuple[int | None, ...]] = {
    "ogg": (64_000, 48_000, 32_000, 24_000, 16_000),
    "mp3": (128_000, 96_000, 64_000, 48_000, 32_000),
    "wav": (None,),
    "flac": (None,),
}
AI_COMMENT = "AI-generated speech (Echo-TTS)"
LICENCE = "CC-BY-NC-SA-4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"

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


@dataclass(frozen=True)
class Tags:
    """What an output file says about itself; the licence is Echo's output licence."""

    title: str
    voice: str
    comment: str = AI_COMMENT
    licence: str = LICENCE


@dataclass(frozen=True, eq=False)
class VoiceMessage:
    """An Ogg/Opus file plus the attachment fields Discord wants for a voice message."""

    data: bytes
    duration_s: float
    waveform: str  # base64, ≤256 amplitude bytes


# --- sniffing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    demuxer: str  # the FFmpeg demuxer forced when opening
    label: str  # how users name the container ("MP4", "Ogg"), for NoAudioStream
    plain: str | None = None  # codec family that makes the format just the container's name


_NOT_AUDIO_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"\xcf\xfa\xed\xfe", "a program"),
    (b"\xca\xfe\xba\xbe", "a program"),
    (b"SQLite format 3\x00", "a database file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office document"),
    (b"MThd", "a MIDI file"),
    (b"wOFF", "a font"),
    (b"wOF2", "a font"),
)
_IMAGE_BRANDS = {
    b"heic": "a HEIC image",
    b"heix": "a HEIC image",
    b"hevc": "a HEIC image",
    b"mif1": "a HEIC image",
    b"msf1": "a HEIC image",
    b"avif": "an AVIF image",
    b"avis": "an AVIF image",
    b"crx ": "a camera raw image",
}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

# MPEG audio frame-header tables: kbit/s by (version is MPEG-1, layer) and Hz by version.
_MP3_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_length(header: bytes) -> int | None:
    """Length in bytes of the MPEG audio frame starting with `header`, or None if it isn't one."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[(mpeg1, min(layer, 2) if not mpeg1 else layer)][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 144 if (mpeg1 or layer == 2) else 72
    return per_frame * bitrate // rate + padding


def _is_adts(head: bytes) -> bool:
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 15 < 13


def _find_mp3_sync(data: bytes, limit: int = 65536) -> bool:
    """Two back-to-back valid MPEG audio frames somewhere in the first `limit` bytes."""
    end = min(len(data), limit)
    pos = data.find(b"\xff", 0, end)
    while pos != -1:
        length = _mp3_frame_length(data[pos : pos + 4])
        if length and _mp3_frame_length(data[pos + length : pos + length + 4]):
            return True
        pos = data.find(b"\xff", pos + 1, end)
    return False


def _text_kind(head: bytes) -> str | None:
    """Name a text file ("an HTML page"), or None when `head` isn't text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a text file"  # UTF-16 with a byte-order mark
    head = head.removeprefix(b"\xef\xbb\xbf")
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if not text or any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in start[:1024]:
        return "an HTML page"
    if start.startswith("<svg") or (start.startswith("<?xml") and "<svg" in start[:2048]):
        return "an SVG image"
    if start.startswith("<?xml"):
        return "an XML file"
    if start.startswith(("{", "[")):
        return "a JSON file"
    if start.startswith("#extm3u"):
        return "a playlist"
    return "a text file"


def _sniff(data: bytes) -> _Kind:
    """Which demuxer to use for `data`, from its first bytes; NotAudio for anything else."""
    if not data:
        raise NotAudio("an empty file")
    head = data[:64]
    if head[:4] in (b"RIFF", b"RF64", b"BW64"):
        riff_type = head[8:12]
        if riff_type == b"WAVE":
            return _Kind("wav", "WAV", plain="pcm")
        if riff_type == b"AVI ":
            return _Kind("avi", "AVI")
        if riff_type == b"WEBP":
            raise NotAudio("a WebP image")
        if riff_type == b"RMID":
            raise NotAudio("a MIDI file")
        raise NotAudio(None)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return _Kind("aiff", "AIFF", plain="pcm")
    if head[:4] == b"fLaC":
        return _Kind("flac", "FLAC", plain="flac")
    if head[:4] == b"OggS":
        return _Kind("ogg", "Ogg")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _Kind("matroska", "WebM" if b"webm" in data[:256] else "MKV")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            raise NotAudio(_IMAGE_BRANDS[brand])
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return _Kind("mov", "M4A")
        if brand == b"qt  ":
            return _Kind("mov", "MOV")
        if brand[:3] in (b"3gp", b"3g2"):
            return _Kind("mov", "3GP")
        return _Kind("mov", "MP4")
    if head[4:8] in _QT_ATOMS:
        return _Kind("mov", "MOV")
    if head[:4] == b"caff":
        return _Kind("caf", "CAF")
    if head[:16] == _ASF_GUID:
        return _Kind("asf", "WMA")
    if head[:3] == b"ID3":
        # ID3v2 size is "syncsafe": 7 bits per byte; a footer adds 10 more bytes
        size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        size += 10 if len(head) > 5 and head[5] & 0x10 else 0
        after = data[size : size + 64]
        if after[:4] == b"fLaC":
            return _Kind("flac", "FLAC", plain="flac")
        if _is_adts(after):
            return _Kind("aac", "AAC", plain="aac")
        return _Kind("mp3", "MP3", plain="mp3")
    if _is_adts(head):
        return _Kind("aac", "AAC", plain="aac")
    if _mp3_frame_length(head[:4]):
        return _Kind("mp3", "MP3", plain="mp3")
    for prefix, what in _NOT_AUDIO_PREFIXES:
        if head.startswith(prefix):
            raise NotAudio(what)
    if head[:2] == b"BM" and len(data) >= 26 and struct.unpack("<I", head[2:6])[0] == len(data):
        raise NotAudio("a BMP image")
    text = _text_kind(data[:4096])
    if text:
        raise NotAudio(text)
    if _find_mp3_sync(data):  # MP3 with junk in front of its first frame
        return _Kind("mp3", "MP3", plain="mp3")
    raise NotAudio(None)


# --- decoding ---------------------------------------------------------------------------------


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


def _decode_reference(data: bytes, kind: _Kind) -> tuple[np.ndarray, str]:
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


def _dbfs(value: float) -> float:
    return 20 * math.log10(value) if value > 1e-6 else -120.0


def _frame_rms(pcm: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive `frame`-sample frames (the last, partial one included)."""
    whole = pcm.size // frame * frame
    squares = np.square(pcm, dtype=np.float32)
    energy = np.add.reduce(squares[:whole].reshape(-1, frame), axis=1, dtype=np.float64)
    counts = np.full(energy.size, frame, dtype=np.float64)
    if whole < pcm.size:
        energy = np.append(energy, np.sum(squares[whole:], dtype=np.float64))
        counts = np.append(counts, pcm.size - whole)
    return np.sqrt(energy / counts)


def _peak(pcm: np.ndarray) -> float:
    return max(float(pcm.max()), -float(pcm.min())) if pcm.size else 0.0


def _check_not_silent(pcm: np.ndarray) -> None:
    peak_dbfs = _dbfs(_peak(pcm))
    frames = _frame_rms(pcm, round(0.02 * SAMPLE_RATE))  # 20 ms
    active_s = np.count_nonzero(frames >= 10 ** (_ACTIVE_DBFS / 20)) * 0.02
    window = min(50, frames.size)  # 1 s of 20 ms frames
    energy = np.concatenate([[0.0], np.cumsum(frames**2)])
    loudest_rms = math.sqrt(max(float(np.max(energy[window:] - energy[:-window])) / window, 0.0))
    if (
        peak_dbfs < SILENCE_PEAK_DBFS
        or _dbfs(loudest_rms) < SILENCE_WINDOW_RMS_DBFS
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
    kind = _sniff(data)
    pcm, fmt = _decode_reference(data, kind)
    duration = pcm.size / SAMPLE_RATE
    if duration < MIN_REFERENCE_S - _SHORT_TOLERANCE_S:
        raise ReferenceTooShort(duration, MIN_REFERENCE_S)
    if not np.isfinite(pcm).all():
        np.nan_to_num(pcm, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    pcm -= np.float32(np.mean(pcm, dtype=np.float64))  # DC offset eats headroom, fools checks
    _check_not_silent(pcm)
    pcm *= np.float32(REFERENCE_PEAK / _peak(pcm))
    return Reference(pcm=pcm, duration_s=duration, format=fmt)


# --- stitching --------------------------------------------------------------------------------


def _fade(n: int) -> np.ndarray:
    """Equal-power fade-in of n samples (sin 0→π/2); its reverse cos curve fades out."""
    return np.sin(np.linspace(0.0, np.pi / 2, n, dtype=np.float64)).astype(np.float32)


def _voice_gate(frame_db: Iterable[np.ndarray]) -> float | None:
    loudest = max((float(np.max(f)) for f in frame_db if f.size), default=-np.inf)
    if loudest < _VOICE_GATE_ABS_DBFS:
        return None
    return max(_VOICE_GATE_ABS_DBFS, loudest - _VOICE_GATE_REL_DB)


def _frame_db(pcm: np.ndarray, frame: int) -> np.ndarray:
    return 20 * np.log10(np.maximum(_frame_rms(pcm, frame), 1e-9))


def speech_level_dbfs(pcm: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> float:
    """Speech level: RMS over voiced 10 ms frames (within 40 dB of the loudest, above -60 dBFS)."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    frame = max(1, round(_VOICE_FRAME_S * sample_rate))
    frame_db = _frame_db(pcm, frame)
    gate = _voice_gate([frame_db])
    if gate is None:
        return -120.0
    rms = _frame_rms(pcm, frame)[frame_db >= gate]
    return _dbfs(float(np.sqrt(np.mean(rms**2))))


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
    voiced = [(a, np.flatnonzero(f >= gate)) for a, f in zip(arrays, frame_dbs, strict=True)]
    voiced = [(a, v[0] * frame, min(a.size, (v[-1] + 1) * frame)) for a, v in voiced if v.size]

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


# --- encoding ---------------------------------------------------------------------------------


_CODECS = {  # fmt: (muxer, encoder, rate, encoder options)
    # Complexity 5 of 10: a fifth less CPU per /say than 10, and the lowest that keeps CELT's pitch
    # pre-filter, which voiced speech needs.
    "ogg": ("ogg", "libopus", OPUS_RATE, {"application": "audio", "compression_level": "5"}),
    "mp3": ("mp3", "libmp3lame", SAMPLE_RATE, {}),
    "wav": ("wav", "pcm_s16le", SAMPLE_RATE, {}),
    # Lossless, for the kept reference: a later model can re-encode the voice from it unchanged.
    "flac": ("flac", "flac", SAMPLE_RATE, {}),
}


def _frames(pcm: np.ndarray, sample_rate: int, step: int, *, stereo: bool = False) -> Iterator[av.AudioFrame]:
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


def _id3_frames(tags: Tags) -> list:
    return [
        TIT2(encoding=3, text=tags.title),
        TPE1(encoding=3, text=tags.voice),
        COMM(encoding=3, lang="eng", desc="", text=tags.comment),
        TXXX(encoding=3, desc="LICENSE", text=tags.licence),
        *([WCOP(url=LICENCE_URL)] if tags.licence == LICENCE else []),
    ]


def _tag(data: bytes, fmt: str, tags: Tags) -> bytes:
    """Write `tags` into an encoded file in memory with mutagen."""
    buf = io.BytesIO(data)
    if fmt == "ogg":
        ogg = OggOpus(buf)
        ogg.tags.clear()
        ogg.tags["TITLE"] = tags.title
        ogg.tags["ARTIST"] = tags.voice
        ogg.tags["COMMENT"] = tags.comment
        ogg.tags["LICENSE"] = tags.licence
        buf.seek(0)
        ogg.save(buf)
    elif fmt == "flac":
        flac = FLAC(buf)
        flac.add_tags() if flac.tags is None else flac.tags.clear()
        for key, value in (
            ("TITLE", tags.title),
            ("ARTIST", tags.voice),
            ("COMMENT", tags.comment),
            ("LICENSE", tags.licence),
        ):
            flac.tags[key] = value
        buf.seek(0)
        flac.save(buf)
    else:
        audio = MP3(buf) if fmt == "mp3" else WAVE(buf)
        if audio.tags is None:
            audio.add_tags()
        id3: ID3 = audio.tags
        for frame in _id3_frames(tags):
            id3.add(frame)
        buf.seek(0)
        audio.save(buf, v2_version=3)
    return buf.getvalue()


def encode(
    pcm: np.ndarray,
    fmt: str = "ogg",
    *,
    sample_rate: int = SAMPLE_RATE,
    bitrate: int | None = None,
    tags: Tags | None = None,
) -> bytes:
    """Encode mono float PCM as "ogg" (Opus at 48 kHz, Discord's voice-message format), "mp3" or
    "wav" (16-bit) or "flac" (lossless, for kept references), in memory; `bitrate` defaults to the
    top of `BITRATE_LADDER[fmt]`."""
    if fmt not in _CODECS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    muxer, codec, rate, options = _CODECS[fmt]
    pcm = np.clip(np.nan_to_num(np.asarray(pcm, dtype=np.float32).reshape(-1)), -1.0, 1.0)
    if pcm.size == 0:
        raise ValueError("no audio to encode (stitch() returns nothing when nothing was audible)")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer) as out:
        if fmt == "wav" and tags is not None:
            # FFmpeg's wav muxer writes these as a RIFF INFO list (INAM, IART, ICMT, ICOP)
            out.metadata.update(
                {
                    "title": tags.title,
                    "artist": tags.voice,
                    "comment": tags.comment,
                    "copyright": tags.licence,
                }
            )
        stream = out.add_stream(codec, rate=rate, layout="mono", options=dict(options))
        chosen = bitrate or BITRATE_LADDER[fmt][0]
        if chosen and fmt != "wav":
            stream.bit_rate = chosen
        # PyAV resamples to the encoder's rate, sample format and frame size on the way in
        for frame in _frames(pcm, sample_rate, step=sample_rate):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = buf.getvalue()
    return _tag(data, fmt, tags) if tags is not None else data


def fit_to_limit(
    pcm: np.ndarray,
    fmt: str,
    limit_bytes: int,
    tags: Tags | None = None,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> bytes:
    """Encode at the highest bitrate of `BITRATE_LADDER[fmt]` whose file is ≤ `limit_bytes`.

    Raises OutputTooLarge when even the lowest bitrate is too big.
    """
    if fmt not in BITRATE_LADDER:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    size = 0
    ladder = BITRATE_LADDER[fmt]
    seconds = len(pcm) / sample_rate
    for bitrate in ladder:
        if bitrate and bitrate != ladder[-1] and bitrate / 8 * seconds > 1.5 * limit_bytes:
            continue  # hopeless even allowing for VBR undershoot: don't spend an encode on it
        data = encode(pcm, fmt, sample_rate=sample_rate, bitrate=bitrate, tags=tags)
        if len(data) <= limit_bytes:
            return data
        size = len(data)
    # errors.py has no "output too large" type yet, so this message is built here
    raise OutputTooLarge(seconds, fmt, size, limit_bytes)


# --- voice messages ---------------------------------------------------------------------------


def duration_seconds(pcm: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> float:
    return np.asarray(pcm).reshape(-1).size / sample_rate


def waveform_levels(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS of each ~100 ms bin (≤256 bins), float32 throughout: one squared copy of the clip, not
    the three float64 ones a cumulative sum needs (32 voice messages at once made that add up)."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    bins = min(256, max(1, math.ceil(pcm.size / sample_rate * 10)))
    if pcm.size == 0:
        return np.zeros(bins, dtype=np.float32)
    edges = np.linspace(0, pcm.size, bins + 1).astype(np.intp)
    sums = np.add.reduceat(np.square(pcm), edges[:-1], dtype=np.float32)
    counts = np.maximum(np.diff(edges), 1).astype(np.float32)
    return np.sqrt(sums / counts)


def voice_message_waveform(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """Discord voice-message waveform: base64 of ≤256 bytes, one 0–255 amplitude per ~100 ms.

    Each byte is a bin's RMS relative to the loudest bin; clips quieter than -60 dBFS are all 0.
    """
    rms = waveform_levels(pcm, sample_rate)
    loudest = float(rms.max())
    if loudest < 10 ** (-60 / 20):
        values = np.zeros(rms.size, dtype=np.uint8)
    else:
        values = np.clip(np.round(rms * np.float32(255 / loudest)), 0, 255).astype(np.uint8)
    return base64.b64encode(values.tobytes()).decode("ascii")


def voice_message(
    pcm: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    tags: Tags | None = None,
    limit_bytes: int | None = None,
) -> VoiceMessage:
    """Everything a voice-message upload needs: Ogg/Opus bytes, duration and waveform."""
    if limit_bytes is None:
        data = encode(pcm, "ogg", sample_rate=sample_rate, tags=tags)
    else:
        data = fit_to_limit(pcm, "ogg", limit_bytes, tags, sample_rate=sample_rate)
    return VoiceMessage(
        data=data,
        duration_s=duration_seconds(pcm, sample_rate=sample_rate),
        waveform=voice_message_waveform(pcm, sample_rate),
    )


# --- live voice -------------------------------------------------------------------------------


def opus_packets(
    chunks: Iterable[np.ndarray], *, sample_rate: int = SAMPLE_RATE, bitrate: int = 96_000
) -> Iterator[bytes]:
    """Raw Opus packets for discord.py's `is_opus()` sources: each exactly one 20 ms frame of
    48 kHz stereo (the mono input on both channels), no container; the last one is padded.

    Streams: each chunk's packets are yielded before the next chunk is read, so playback can start
    while later chunks are still being synthesised.
    """
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "stereo"
    encoder.format = "flt"
    encoder.bit_rate = bitrate
    encoder.options = {"application": "audio", "frame_duration": "20"}
    encoder.open()
    resampler = av.AudioResampler(
        format="flt", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME_SAMPLES
    )
    for chunk in chunks:
        pcm = np.clip(np.nan_to_num(np.asarray(chunk, dtype=np.float32).reshape(-1)), -1.0, 1.0)
        if pcm.size == 0:
            continue
        for frame in _frames(pcm, sample_rate, step=pcm.size, stereo=True):
            for out in resampler.resample(frame):
                for packet in encoder.encode(out):
                    yield bytes(packet)
    for out in resampler.resample(None):
        for packet in encoder.encode(out):
            yield bytes(packet)
    for packet in encoder.encode(None):
        yield bytes(packet)
