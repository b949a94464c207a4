"""Speech → files in memory: Ogg/Opus, MP3, WAV (and FLAC for kept references), tagged, fitted to a size.

Tags: Ogg/Opus gets Vorbis comments, MP3 gets ID3v2.3, WAV gets a RIFF INFO list (written by FFmpeg;
mutagen can't write INFO) and an ID3 chunk (written by mutagen).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from mutagen.flac import FLAC
from mutagen.id3 import COMM, ID3, TIT2, TPE1, TXXX, WCOP
from mutagen.mp3 import MP3
from mutagen.oggopus import OggOpus
from mutagen.wave import WAVE

from modal_tts.output.errors import OutputTooLarge
from modal_tts.output.pcm import OPUS_RATE, SAMPLE_RATE, av_frames, clean

# The first rung is the default bitrate; fit_to_limit walks down from it until the file fits.
BITRATE_LADDER: dict[str, tuple[int | None, ...]] = {
    "ogg": (64_000, 48_000, 32_000, 24_000, 16_000),
    "mp3": (128_000, 96_000, 64_000, 48_000, 32_000),
    "wav": (None,),
    "flac": (None,),
}
FORMATS = tuple(BITRATE_LADDER)  # what encode() can write; the bot offers its users a subset
AI_COMMENT = "AI-generated speech (Echo-TTS)"
LICENCE = "CC-BY-NC-SA-4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"


@dataclass(frozen=True)
class Tags:
    """What an output file says about itself; the licence is Echo's output licence."""

    title: str
    voice: str
    comment: str = AI_COMMENT
    licence: str = LICENCE


_CODECS = {  # fmt: (muxer, encoder, rate, encoder options)
    # Complexity 5 of 10: a fifth less CPU per /say than 10, and the lowest that keeps CELT's pitch
    # pre-filter, which voiced speech needs.
    "ogg": ("ogg", "libopus", OPUS_RATE, {"application": "audio", "compression_level": "5"}),
    "mp3": ("mp3", "libmp3lame", SAMPLE_RATE, {}),
    "wav": ("wav", "pcm_s16le", SAMPLE_RATE, {}),
    # Lossless, for the kept reference: a later model can re-encode the voice from it unchanged.
    "flac": ("flac", "flac", SAMPLE_RATE, {}),
}


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
    if fmt in ("ogg", "flac"):
        vorbis = OggOpus(buf) if fmt == "ogg" else FLAC(buf)
        if vorbis.tags is None:
            vorbis.add_tags()
        for key in list(vorbis.keys()):
            del vorbis[key]
        for key, value in (
            ("TITLE", tags.title),
            ("ARTIST", tags.voice),
            ("COMMENT", tags.comment),
            ("LICENSE", tags.licence),
        ):
            vorbis[key] = value
        buf.seek(0)
        vorbis.save(buf)
    else:
        audio = MP3(buf) if fmt == "mp3" else WAVE(buf)
        if audio.tags is None:
            audio.add_tags()
        id3 = audio.tags
        assert isinstance(id3, ID3)
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
    pcm = clean(pcm)
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
        assert isinstance(stream, av.AudioStream)
        chosen = bitrate or BITRATE_LADDER[fmt][0]
        if chosen and fmt != "wav":
            stream.bit_rate = chosen
        # PyAV resamples to the encoder's rate, sample format and frame size on the way in
        for frame in av_frames(pcm, sample_rate, step=sample_rate):
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
    raise OutputTooLarge(seconds, fmt, size, limit_bytes)
