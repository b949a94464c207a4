"""Which container an upload is, from its first bytes, before FFmpeg sees it.

Uploads are opened with the one demuxer sniffed here forced, so FFmpeg never probes its way into
playlist/concat demuxers that could read other files, and non-audio files are named ("a PNG image")
without FFmpeg seeing them.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass

from bot.errors import NotAudio


@dataclass(frozen=True)
class Kind:
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


def sniff(data: bytes) -> Kind:
    """Which demuxer to use for `data`, from its first bytes; NotAudio for anything else."""
    if not data:
        raise NotAudio("an empty file")
    head = data[:64]
    if head[:4] in (b"RIFF", b"RF64", b"BW64"):
        riff_type = head[8:12]
        if riff_type == b"WAVE":
            return Kind("wav", "WAV", plain="pcm")
        if riff_type == b"AVI ":
            return Kind("avi", "AVI")
        if riff_type == b"WEBP":
            raise NotAudio("a WebP image")
        if riff_type == b"RMID":
            raise NotAudio("a MIDI file")
        raise NotAudio(None)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return Kind("aiff", "AIFF", plain="pcm")
    if head[:4] == b"fLaC":
        return Kind("flac", "FLAC", plain="flac")
    if head[:4] == b"OggS":
        return Kind("ogg", "Ogg")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Kind("matroska", "WebM" if b"webm" in data[:256] else "MKV")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            raise NotAudio(_IMAGE_BRANDS[brand])
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return Kind("mov", "M4A")
        if brand == b"qt  ":
            return Kind("mov", "MOV")
        if brand[:3] in (b"3gp", b"3g2"):
            return Kind("mov", "3GP")
        return Kind("mov", "MP4")
    if head[4:8] in _QT_ATOMS:
        return Kind("mov", "MOV")
    if head[:4] == b"caff":
        return Kind("caf", "CAF")
    if head[:16] == _ASF_GUID:
        return Kind("asf", "WMA")
    if head[:3] == b"ID3":
        # ID3v2 size is "syncsafe": 7 bits per byte; a footer adds 10 more bytes
        size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        size += 10 if len(head) > 5 and head[5] & 0x10 else 0
        after = data[size : size + 64]
        if after[:4] == b"fLaC":
            return Kind("flac", "FLAC", plain="flac")
        if _is_adts(after):
            return Kind("aac", "AAC", plain="aac")
        return Kind("mp3", "MP3", plain="mp3")
    if _is_adts(head):
        return Kind("aac", "AAC", plain="aac")
    if _mp3_frame_length(head[:4]):
        return Kind("mp3", "MP3", plain="mp3")
    for prefix, what in _NOT_AUDIO_PREFIXES:
        if head.startswith(prefix):
            raise NotAudio(what)
    if head[:2] == b"BM" and len(data) >= 26 and struct.unpack("<I", head[2:6])[0] == len(data):
        raise NotAudio("a BMP image")
    text = _text_kind(data[:4096])
    if text:
        raise NotAudio(text)
    if _find_mp3_sync(data):  # MP3 with junk in front of its first frame
        return Kind("mp3", "MP3", plain="mp3")
    raise NotAudio(None)
