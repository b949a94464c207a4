"""bot.audio: reference decoding and validation, voice messages, and the bot's wording of a file too big
(stitching, encoding and Opus packets are `modal_tts.output`'s: tests/test_output.py)."""

from __future__ import annotations

import base64
import dataclasses
import io
import itertools
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from functools import cache

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import audio
from bot.errors import (
    BadReference,
    FileTooLarge,
    InvalidInput,
    NoAudioStream,
    NotAudio,
    ReferenceSilent,
    ReferenceTooLong,
    ReferenceTooShort,
    Undecodable,
)
from tests import media
from tests.test_output import TAGS, best_correlation, envelope, speech

SR = audio.SAMPLE_RATE
MAX_BYTES = 20 * 1024 * 1024
TRUTH_S = 6.0


@cache
def voice() -> np.ndarray:
    return media.speech_like(TRUTH_S, seed=3)


@cache
def encoded(kind: str) -> bytes:
    return media.encode(voice(), kind)


# --- load_reference: every accepted format ---------------------------------------------------


@pytest.mark.parametrize("kind", list(media.RECIPES))
def test_accepted_format_decodes_to_mono_44k_float(kind: str) -> None:
    ref = audio.load_reference(encoded(kind), max_bytes=MAX_BYTES)

    assert ref.format == media.RECIPES[kind].fmt
    assert ref.pcm.dtype == np.float32 and ref.pcm.ndim == 1
    assert abs(ref.duration_s - TRUTH_S) <= 0.2
    assert ref.duration_s == pytest.approx(ref.pcm.size / SR)
    assert float(np.max(np.abs(ref.pcm))) == pytest.approx(audio.REFERENCE_PEAK, abs=1e-3)
    # it is the same sound: 10 ms loudness envelopes line up, allowing ±50 ms of codec delay
    got, want = envelope(ref.pcm, SR, 0.01), envelope(voice(), SR, 0.01)
    assert best_correlation(want - want.mean(), got - got.mean(), max_lag=5, min_lag=-5) >= 0.9


def test_discord_voice_message_is_a_reference() -> None:
    data = encoded("voice-message")
    with av.open(io.BytesIO(data)) as container:  # really what Discord sends: mono 48 kHz Opus
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("opus", 48000, 1)

    ref = audio.load_reference(data, max_bytes=MAX_BYTES)

    assert ref.format == "ogg/opus"
    assert abs(ref.duration_s - TRUTH_S) <= 0.2
    assert ref.pcm.size == pytest.approx(TRUTH_S * SR, abs=0.2 * SR)


def test_our_own_ogg_output_round_trips_as_a_reference() -> None:
    data = audio.encode(voice(), "ogg", tags=audio.Tags(title="t", voice="v"))
    ref = audio.load_reference(data, max_bytes=MAX_BYTES)
    assert (ref.format, round(ref.duration_s, 1)) == ("ogg/opus", TRUTH_S)


def test_reference_is_frozen_and_dc_free() -> None:
    offset = voice() + np.float32(0.3)  # a DC offset like a cheap USB microphone's
    ref = audio.load_reference(media.encode(offset * 0.7, "flac"), max_bytes=MAX_BYTES)
    assert abs(float(np.mean(ref.pcm))) < 1e-3
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.duration_s = 1.0  # type: ignore[misc]


def test_streamed_wav_with_unknown_size_is_accepted() -> None:
    # writers that stream WAV put 0xFFFFFFFF in the size fields; the real length wins
    data = media.wav_bytes(voice(), riff_size=0xFFFFFFFF, data_size=0xFFFFFFFF)
    ref = audio.load_reference(data, max_bytes=MAX_BYTES)
    assert ref.duration_s == pytest.approx(TRUTH_S, abs=0.01)


def test_reference_just_over_five_minutes_is_trimmed_not_refused() -> None:
    clip = np.tile(media.speech_like(6.0, sample_rate=8000), 51)[: round(300.3 * 8000)]
    ref = audio.load_reference(media.wav_bytes(clip, sample_rate=8000), max_bytes=MAX_BYTES)
    assert ref.duration_s == audio.MAX_REFERENCE_S
    assert ref.pcm.size == audio.MAX_REFERENCE_S * SR


# --- load_reference: bad inputs --------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("voice.txt", "not a recording")
    return buf.getvalue()


def _long_wav(seconds: float = 360.0, **header: int) -> bytes:
    """A 6 min WAV at 8 kHz: long to decode, cheap to make."""
    clip = np.tile(media.speech_like(6.0, sample_rate=8000), int(seconds // 6) + 1)
    return media.wav_bytes(clip[: round(seconds * 8000)], sample_rate=8000, **header)


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _silent_then_click() -> bytes:
    clip = np.zeros(6 * SR, dtype=np.float32)
    clip[3 * SR : 3 * SR + 8] = 0.9
    return media.encode(clip, "wav")


BAD_INPUTS: dict[str, tuple[Callable[[], bytes], type[BadReference], tuple[str, ...]]] = {
    "empty": (lambda: b"", NotAudio, ("an empty file",)),
    "random bytes": (lambda: np.random.default_rng(7).bytes(40_000), NotAudio, ("not audio",)),
    "png": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(64), NotAudio, ("a PNG image",)),
    "jpeg": (lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64), NotAudio, ("a JPEG image",)),
    "gif": (lambda: b"GIF89a" + bytes(64), NotAudio, ("a GIF image",)),
    "webp": (lambda: b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(64), NotAudio, ("a WebP image",)),
    "heic": (lambda: b"\x00\x00\x00\x18ftypheic" + bytes(64), NotAudio, ("a HEIC image",)),
    "pdf": (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(64), NotAudio, ("a PDF document",)),
    "zip": (_zip, NotAudio, ("a ZIP archive",)),
    "text": (lambda: "Grüße — ceci est du texte.\n".encode() * 50, NotAudio, ("a text file",)),
    "html": (
        lambda: b"<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>",
        NotAudio,
        ("an HTML page",),
    ),
    "truncated mp3": (lambda: encoded("mp3")[:300], Undecodable, ("damaged or truncated",)),
    "truncated ogg": (lambda: encoded("voice-message")[:1000], Undecodable, ("truncated",)),
    "truncated wav header": (lambda: encoded("wav")[:30], Undecodable, ("truncated",)),
    # claims ~4 GiB of samples but holds 2 s: the real length is reported, not the header's
    "wav header claiming a huge size": (
        lambda: media.wav_bytes(voice()[: 2 * SR], riff_size=0xFFFFFFFF, data_size=0xFFFFFFF0),
        ReferenceTooShort,
        ("2.0 s long", "5.0 s to 5 min"),
    ),
    "wav header claiming 1 Hz": (
        lambda: media.wav_bytes(voice(), claimed_rate=1),
        Undecodable,
        ("damaged",),
    ),
    "wav header claiming 600 channels": (
        lambda: media.wav_bytes(voice(), channels=600),
        Undecodable,
        ("damaged",),
    ),
    # a CAF header whose packet layout slices the audio into 2-byte packets: dropped early
    "caf header making 1-sample packets": (
        lambda: _patched(encoded("caf"), 40, (8193).to_bytes(4, "big")),
        Undecodable,
        ("damaged",),
    ),
    "3 s clip": (
        lambda: media.encode(voice()[: 3 * SR], "mp3"),
        ReferenceTooShort,
        ("3.0 s long", "5.0 s to 5 min"),
    ),
    "mp3 cut to 2 s": (
        lambda: encoded("mp3")[: len(encoded("mp3")) // 3],
        ReferenceTooShort,
        ("2.0 s long", "5.0 s to 5 min"),
    ),
    "silent clip": (
        lambda: media.encode(media.noise(6.0, dbfs=-75.0), "flac"),
        ReferenceSilent,
        ("-62 dBFS",),
    ),
    "digital silence": (
        lambda: media.encode(np.zeros(6 * SR, np.float32), "wav"),
        ReferenceSilent,
        ("-120 dBFS",),
    ),
    "one click in silence": (_silent_then_click, ReferenceSilent, ("-1 dBFS",)),
    "video-only mp4": (lambda: media.video_only("mp4"), NoAudioStream, ("That MP4 file",)),
    "video-only webm": (
        lambda: media.video_only("webm", "libvpx"),
        NoAudioStream,
        ("That WebM file",),
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_reference_is_refused_with_a_typed_error(name: str) -> None:
    make, error, phrases = BAD_INPUTS[name]
    data = make()
    started = time.thread_time()  # this thread's CPU time: the work done, however busy the machine is
    with pytest.raises(error) as caught:
        audio.load_reference(data, max_bytes=MAX_BYTES)
    assert time.thread_time() - started < 3.0  # bounded work, whatever the file claims
    for phrase in phrases:
        assert phrase in caught.value.message


def test_detected_kind_and_numbers_are_on_the_error() -> None:
    with pytest.raises(NotAudio) as png:
        audio.load_reference(BAD_INPUTS["png"][0](), max_bytes=MAX_BYTES)
    assert png.value.detected == "a PNG image"
    with pytest.raises(ReferenceTooShort) as short:
        audio.load_reference(BAD_INPUTS["3 s clip"][0](), max_bytes=MAX_BYTES)
    assert (round(short.value.seconds, 1), short.value.minimum) == (3.0, 5.0)
    with pytest.raises(ReferenceSilent) as silent:
        audio.load_reference(BAD_INPUTS["silent clip"][0](), max_bytes=MAX_BYTES)
    assert silent.value.peak_dbfs < audio.SILENCE_PEAK_DBFS
    with pytest.raises(NoAudioStream) as video:
        audio.load_reference(BAD_INPUTS["video-only mp4"][0](), max_bytes=MAX_BYTES)
    assert video.value.container == "MP4"


@pytest.mark.parametrize(
    "header",
    [{}, {"riff_size": 0xFFFFFFFF, "data_size": 0xFFFFFFFF}, {"data_size": 0xFFFFFFF0}],
    ids=["honest header", "unknown size", "header claiming 13 h"],
)
def test_six_minute_clip_is_refused_fast_with_its_real_length(header: dict[str, int]) -> None:
    data = _long_wav(360.0, **header)
    started = time.monotonic()
    with pytest.raises(ReferenceTooLong) as caught:
        audio.load_reference(data, max_bytes=MAX_BYTES)
    assert time.monotonic() - started < 3.0  # bounded: stops just past 5 min of audio
    assert caught.value.seconds == pytest.approx(360.0, abs=2.0)
    assert caught.value.maximum == audio.MAX_REFERENCE_S
    assert "6 min long" in caught.value.message and "5 s to 5 min" in caught.value.message


def test_oversized_upload_is_refused_before_any_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("av.open must not be reached")

    monkeypatch.setattr(av, "open", no_decoding)
    data = encoded("wav")
    with pytest.raises(FileTooLarge) as caught:
        audio.load_reference(data, max_bytes=100 * 1024)
    assert (caught.value.size, caught.value.limit) == (len(data), 100 * 1024)
    assert "517 KiB" in caught.value.message and "at most 100 KiB" in caught.value.message
    with pytest.raises(FileTooLarge):  # size wins over content: garbage that's too big
        audio.load_reference(b"\x89PNG" + bytes(2000), max_bytes=1000)


def test_non_audio_never_reaches_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("av.open must not be reached")

    monkeypatch.setattr(av, "open", no_decoding)
    for name in ("png", "jpeg", "pdf", "zip", "text", "html", "random bytes"):
        with pytest.raises(NotAudio):
            audio.load_reference(BAD_INPUTS[name][0](), max_bytes=MAX_BYTES)
    # an HLS playlist is text: FFmpeg would follow its links, so it must stop here
    with pytest.raises(NotAudio, match="a playlist"):
        audio.load_reference(b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n", max_bytes=MAX_BYTES)


_SMALL_KINDS = ("wav", "mp3", "voice-message", "m4a", "flac", "webm", "mp4", "caf", "aiff")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(_SMALL_KINDS),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=12),
)
def test_damaged_files_only_ever_raise_bad_reference(
    kind: str, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(encoded(kind))
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(len(data) * cut))] if cut < 0.98 else data
    try:
        ref = audio.load_reference(bytes(data), max_bytes=MAX_BYTES)
    except BadReference:
        return
    assert ref.pcm.dtype == np.float32
    assert audio.MIN_REFERENCE_S - 0.05 <= ref.duration_s <= audio.MAX_REFERENCE_S


def test_flac_keeps_a_reference_losslessly_enough_to_reload() -> None:
    pcm = media.speech_like(6.0, seed=3) * 0.5
    data = audio.encode(pcm, "flac")
    assert data[:4] == b"fLaC"
    again = audio.load_reference(data, max_bytes=len(data))
    assert again.format == "flac" and abs(again.duration_s - pcm.size / audio.SAMPLE_RATE) < 0.01
    # 16-bit lossless: the reloaded clip matches up to quantisation and load_reference's levelling
    centred = pcm - pcm.mean()
    scale = np.abs(again.pcm).max() / np.abs(centred).max()
    assert np.abs(again.pcm - centred * scale).max() < 2e-3


def test_fit_to_limit_says_when_nothing_fits() -> None:
    with pytest.raises(InvalidInput) as caught:
        audio.fit_to_limit(speech(), "ogg", 2000, TAGS)
    assert f"{speech().size / SR:.1f} s long" in caught.value.message
    assert "the upload limit here is 2 KiB" in caught.value.message
    with pytest.raises(InvalidInput, match="WAV file is"):
        audio.fit_to_limit(speech(), "wav", 100_000, TAGS)


# --- voice messages --------------------------------------------------------------------------


def _waveform_bytes(waveform: str) -> bytes:
    return base64.b64decode(waveform, validate=True)


def test_waveform_is_discord_shaped() -> None:
    values = _waveform_bytes(audio.voice_message_waveform(speech(), SR))
    assert 1 <= len(values) <= 256
    assert len(values) == round(speech().size / SR * 10)  # one value per 100 ms
    assert max(values) == 255 and min(values) < 60  # loudest syllable full height, gaps low

    long = np.tile(speech(), 30)  # two minutes: capped at 256 values
    assert len(_waveform_bytes(audio.voice_message_waveform(long, SR))) == 256


def test_waveform_of_silence_is_all_zeros() -> None:
    for quiet in (np.zeros(3 * SR, np.float32), media.noise(3.0, dbfs=-80.0)):
        values = _waveform_bytes(audio.voice_message_waveform(quiet, SR))
        assert len(values) == 30 and set(values) == {0}
    assert len(_waveform_bytes(audio.voice_message_waveform(np.zeros(10, np.float32), SR))) == 1


def test_waveform_is_computed_in_float32_and_matches_a_float64_reference() -> None:
    clip = np.tile(speech(), 4)
    levels = audio.waveform_levels(clip, SR)
    assert levels.dtype == np.float32 and levels.size == round(clip.size / SR * 10)
    # The same bytes as summing in float64, at most one step apart where a value sits on a rounding edge.
    edges = np.linspace(0, clip.size, levels.size + 1).astype(int)
    squares = clip.astype(np.float64) ** 2
    reference = np.sqrt([squares[a:b].mean() for a, b in itertools.pairwise(edges)])
    expected = np.round(255 * reference / reference.max()).astype(int)
    values = np.frombuffer(_waveform_bytes(audio.voice_message_waveform(clip, SR)), np.uint8).astype(int)
    assert np.abs(values - expected).max() <= 1


def test_voice_message_bundles_ogg_duration_and_waveform() -> None:
    message = audio.voice_message(speech(), tags=TAGS, limit_bytes=10 * 1024 * 1024)
    assert message.data[:4] == b"OggS"
    assert message.duration_s == pytest.approx(audio.duration_seconds(speech()))
    assert message.duration_s == pytest.approx(media.decode(message.data)[0].shape[1] / 48000, abs=0.03)
    assert message.waveform == audio.voice_message_waveform(speech(), SR)


# --- boundaries --------------------------------------------------------------------------------


def test_bot_audio_does_not_import_torch() -> None:
    code = "import sys, bot.audio; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
