"""bot.audio: reference decoding and validation, stitching, encoding, voice messages, Opus packets."""

from __future__ import annotations

import base64
import dataclasses
import io
import itertools
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from functools import cache

import av
import mutagen
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

SR = audio.SAMPLE_RATE
MAX_BYTES = 20 * 1024 * 1024
TRUTH_S = 6.0


@cache
def voice() -> np.ndarray:
    return media.speech_like(TRUTH_S, seed=3)


@cache
def encoded(kind: str) -> bytes:
    return media.encode(voice(), kind)


def envelope(pcm: np.ndarray, sample_rate: int, frame_s: float = 0.05) -> np.ndarray:
    frame = round(frame_s * sample_rate)
    n = len(pcm) // frame
    return np.sqrt(np.mean(pcm[: n * frame].reshape(n, frame) ** 2, axis=1))


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int, min_lag: int = 0) -> float:
    """Highest normalised correlation of `a` against `b` shifted by min_lag..max_lag samples
    (positive: `b` lags behind `a`)."""
    best = -1.0
    for lag in range(min_lag, max_lag + 1):
        x, y = (a, b[lag:]) if lag >= 0 else (a[-lag:], b)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
    return best


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


# --- stitch ----------------------------------------------------------------------------------


def _voiced_spans(pcm: np.ndarray, frame_s: float = 0.005) -> list[tuple[float, float]]:
    """(start, end) seconds of runs louder than 30 dB below the loudest frame."""
    frame = round(frame_s * SR)
    level = envelope(pcm, SR, frame_s)
    loud = np.concatenate([[False], level > level.max() * 10 ** (-30 / 20), [False]])
    edges = np.flatnonzero(np.diff(loud.astype(int)))
    return [(s * frame / SR, e * frame / SR) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def test_stitch_joins_without_clicks() -> None:
    # chunks that stop mid-waveform at full level, the worst case for a click
    chunks = [
        media.tone(0.7013, 200.0, amplitude=0.6),
        media.tone(0.5031, 200.0, amplitude=0.6),
        -media.tone(0.6007, 200.0, amplitude=0.6),
    ]
    out = audio.stitch(chunks)
    steady_step = 2 * np.pi * 200.0 / SR * float(np.max(np.abs(out)))  # a sine's largest step
    assert float(np.max(np.abs(np.diff(out)))) <= 1.1 * steady_step
    assert abs(float(out[0])) < 1e-3 and abs(float(out[-1])) < 1e-3


def test_stitch_trims_silence_and_leaves_a_short_pause() -> None:
    floor = -65.0
    first = np.concatenate(
        [media.noise(0.8, dbfs=floor, seed=1), media.tone(1.0), media.noise(1.5, dbfs=floor, seed=2)]
    )
    second = np.concatenate(
        [media.noise(0.6, dbfs=floor, seed=3), media.tone(0.8, 300.0), media.noise(0.05, dbfs=floor, seed=4)]
    )
    out = audio.stitch([first, second])

    spans = _voiced_spans(out)
    assert len(spans) == 2
    (start1, end1), (start2, end2) = spans
    assert start1 == pytest.approx(audio.EDGE_PAD_S, abs=0.015)
    assert out.size / SR - end2 == pytest.approx(audio.EDGE_PAD_S, abs=0.015)
    assert start2 - end1 == pytest.approx(audio.PAUSE_S, abs=0.02)
    assert (end1 - start1, end2 - start2) == pytest.approx((1.0, 0.8), abs=0.02)
    assert out.size / SR == pytest.approx(0.1 + 1.0 + 0.25 + 0.8 + 0.1, abs=0.03)


@pytest.mark.parametrize("peak", [0.02, 0.3, 1.0])
def test_stitch_meets_the_loudness_target(peak: float) -> None:
    chunks = [media.speech_like(2.0, seed=s, peak=peak) for s in (1, 2)]
    out = audio.stitch(chunks)
    assert audio.speech_level_dbfs(out) == pytest.approx(audio.TARGET_SPEECH_DBFS, abs=1.0)
    # cross-check with a plain RMS over the steady tone of a second input
    tone_out = audio.stitch([media.tone(2.0, amplitude=peak)])
    middle = tone_out[SR // 2 : -SR // 2]
    rms_db = 20 * np.log10(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(audio.TARGET_SPEECH_DBFS, abs=1.0)


def test_stitch_never_clips_even_with_spikes() -> None:
    spiky = media.speech_like(3.0, seed=9, peak=0.3)
    spiky[[20_000, 60_000, 100_000]] = [1.8, -2.5, 1.2]  # float PCM can exceed full scale
    out = audio.stitch([spiky, spiky * 3])
    ceiling = 10 ** (audio.PEAK_CEILING_DBFS / 20)
    assert float(np.max(np.abs(out))) <= ceiling + 1e-6
    assert audio.speech_level_dbfs(out) == pytest.approx(audio.TARGET_SPEECH_DBFS, abs=1.0)


def test_stitch_is_pure_and_float32() -> None:
    chunk = media.speech_like(1.5, seed=4, peak=0.9).astype(np.float64)
    before = chunk.copy()
    out = audio.stitch([chunk])
    assert np.array_equal(chunk, before)
    assert out.dtype == np.float32 and out.ndim == 1


def test_stitch_of_nothing_audible_is_empty() -> None:
    assert audio.stitch([]).size == 0
    assert audio.stitch([np.zeros(SR, np.float32), media.noise(0.5, dbfs=-90.0)]).size == 0


# --- encode and tags -------------------------------------------------------------------------

TAGS = audio.Tags(title="Bonjour tout le monde", voice="Alice")


@cache
def speech() -> np.ndarray:
    return audio.stitch([media.speech_like(4.0, seed=11)])


@pytest.mark.parametrize(("fmt", "rate"), [("ogg", 48000), ("mp3", 44100), ("wav", 44100)])
def test_encode_decodes_back_with_tags(fmt: str, rate: int) -> None:
    pcm = speech()
    data = audio.encode(pcm, fmt, tags=TAGS)

    decoded, got_rate = media.decode(data)
    assert (got_rate, decoded.shape[0]) == (rate, 1)
    assert decoded.shape[1] / rate == pytest.approx(pcm.size / SR, abs=0.03)
    original = media.resample(pcm, SR, rate)
    assert best_correlation(original, decoded[0], max_lag=2000) >= 0.9

    tags = mutagen.File(io.BytesIO(data)).tags
    if fmt == "ogg":
        assert tags["TITLE"] == [TAGS.title] and tags["ARTIST"] == ["Alice"]
        assert tags["COMMENT"] == ["AI-generated speech (Echo-TTS)"]
        assert tags["LICENSE"] == ["CC-BY-NC-SA-4.0"]
    else:
        assert str(tags["TIT2"]) == TAGS.title and str(tags["TPE1"]) == "Alice"
        assert str(tags["COMM::eng"]) == "AI-generated speech (Echo-TTS)"
        assert str(tags["TXXX:LICENSE"]) == "CC-BY-NC-SA-4.0"
        assert tags["WCOP"].url == audio.LICENCE_URL
    if fmt == "wav":  # and a RIFF INFO list, which most desktop players read
        with av.open(io.BytesIO(data)) as container:
            info = container.metadata
        assert (info["title"], info["artist"], info["copyright"]) == (TAGS.title, "Alice", "CC-BY-NC-SA-4.0")


def test_encode_rejects_unknown_format_and_empty_audio() -> None:
    with pytest.raises(ValueError, match="aiff"):
        audio.encode(speech(), "aiff")
    with pytest.raises(ValueError, match="no audio"):
        audio.encode(np.zeros(0, np.float32), "ogg")


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


def _kbps(data: bytes, seconds: float) -> float:
    return len(data) * 8 / seconds / 1000


def test_fit_to_limit_steps_the_bitrate_down() -> None:
    pcm, seconds = speech(), speech().size / SR
    roomy = audio.fit_to_limit(pcm, "ogg", 10 * 1024 * 1024, TAGS)
    assert _kbps(roomy, seconds) == pytest.approx(64, rel=0.25)

    limit = int(40_000 * seconds / 8)  # room for ~40 kbit/s: 48k is too much, 32k fits
    fitted = audio.fit_to_limit(pcm, "ogg", limit, TAGS)
    assert len(fitted) <= limit
    assert _kbps(fitted, seconds) == pytest.approx(32, rel=0.25)
    assert mutagen.File(io.BytesIO(fitted)).tags["ARTIST"] == ["Alice"]
    assert media.decode(fitted)[0].shape[1] / 48000 == pytest.approx(seconds, abs=0.03)

    mp3 = audio.fit_to_limit(pcm, "mp3", int(70_000 * seconds / 8), TAGS)
    assert _kbps(mp3, seconds) == pytest.approx(64, rel=0.2)


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


# --- opus_packets ----------------------------------------------------------------------------


def _toc_frame_ms(packet: bytes) -> tuple[float, int]:
    """Frame duration (ms) and frame-count code from an Opus packet's TOC byte (RFC 6716 §3.1)."""
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        ms = (10, 20, 40, 60)[config % 4]
    elif config < 16:
        ms = (10, 20)[config % 2]
    else:
        ms = (2.5, 5, 10, 20)[config % 4]
    return ms, code


def test_opus_packets_are_single_20ms_frames_that_sound_like_the_input() -> None:
    pcm = media.speech_like(3.0, seed=5)
    chunks = [pcm[:SR], pcm[SR : 2 * SR + 123], pcm[2 * SR + 123 :]]
    packets = list(audio.opus_packets(chunks))

    assert all(_toc_frame_ms(p) == (20, 0) for p in packets)
    each = media.decode_opus_packets_each(packets)
    assert {e.shape for e in each} == {(2, audio.OPUS_FRAME_SAMPLES)}
    assert len(packets) * 0.02 == pytest.approx(3.0, abs=0.05)

    decoded = media.decode_opus_packets(packets)
    assert np.allclose(decoded[0], decoded[1], atol=5e-3)  # mono copied to both channels
    reference = media.resample(pcm, SR, 48000)
    # at the same level, not FFmpeg's 3 dB quieter mono→stereo upmix
    assert float(np.max(np.abs(decoded))) == pytest.approx(float(np.max(np.abs(pcm))), rel=0.15)
    assert best_correlation(reference[: 2 * 48000], decoded[0], max_lag=1500) >= 0.9


def test_opus_packets_stream_chunk_by_chunk() -> None:
    consumed: list[int] = []

    def chunks() -> Iterator[np.ndarray]:
        for i in range(3):
            consumed.append(i)
            yield media.speech_like(1.0, seed=i)

    packets = audio.opus_packets(chunks())
    first = next(packets)
    assert consumed == [0] and len(first) > 0
    produced_before_second = 1
    while len(consumed) == 1:
        next(packets)
        produced_before_second += 1
    # nearly all of the first second came out before the second chunk was asked for
    assert produced_before_second >= 47
    assert produced_before_second + sum(1 for _ in packets) == pytest.approx(150, abs=2)


def test_opus_packets_accept_other_rates_and_skip_empty_chunks() -> None:
    pcm48 = media.speech_like(1.0, sample_rate=48000)
    packets = list(audio.opus_packets([np.zeros(0, np.float32), pcm48], sample_rate=48000))
    assert len(packets) == pytest.approx(50, abs=2)
    assert {e.shape for e in media.decode_opus_packets_each(packets)} == {(2, 960)}


# --- boundaries --------------------------------------------------------------------------------


def test_bot_audio_does_not_import_torch() -> None:
    code = "import sys, bot.audio; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
