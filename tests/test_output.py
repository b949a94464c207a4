"""modal_tts.output: stitching and levelling, files with tags, Opus packets (whole and streamed), and the
boundary that lets the engine side import it (no torch, nothing from the bot)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from collections.abc import Iterator
from functools import cache

import av
import mutagen
import numpy as np
import pytest

from modal_tts import output
from tests import media

SR = output.SAMPLE_RATE


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
    out = output.stitch(chunks)
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
    out = output.stitch([first, second])

    spans = _voiced_spans(out)
    assert len(spans) == 2
    (start1, end1), (start2, end2) = spans
    assert start1 == pytest.approx(output.EDGE_PAD_S, abs=0.015)
    assert out.size / SR - end2 == pytest.approx(output.EDGE_PAD_S, abs=0.015)
    assert start2 - end1 == pytest.approx(output.PAUSE_S, abs=0.02)
    assert (end1 - start1, end2 - start2) == pytest.approx((1.0, 0.8), abs=0.02)
    assert out.size / SR == pytest.approx(0.1 + 1.0 + 0.25 + 0.8 + 0.1, abs=0.03)


@pytest.mark.parametrize("peak", [0.02, 0.3, 1.0])
def test_stitch_meets_the_loudness_target(peak: float) -> None:
    chunks = [media.speech_like(2.0, seed=s, peak=peak) for s in (1, 2)]
    out = output.stitch(chunks)
    assert output.speech_level_dbfs(out) == pytest.approx(output.TARGET_SPEECH_DBFS, abs=1.0)
    # cross-check with a plain RMS over the steady tone of a second input
    tone_out = output.stitch([media.tone(2.0, amplitude=peak)])
    middle = tone_out[SR // 2 : -SR // 2]
    rms_db = 20 * np.log10(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(output.TARGET_SPEECH_DBFS, abs=1.0)


def test_stitch_never_clips_even_with_spikes() -> None:
    spiky = media.speech_like(3.0, seed=9, peak=0.3)
    spiky[[20_000, 60_000, 100_000]] = [1.8, -2.5, 1.2]  # float PCM can exceed full scale
    out = output.stitch([spiky, spiky * 3])
    ceiling = 10 ** (output.PEAK_CEILING_DBFS / 20)
    assert float(np.max(np.abs(out))) <= ceiling + 1e-6
    assert output.speech_level_dbfs(out) == pytest.approx(output.TARGET_SPEECH_DBFS, abs=1.0)


def test_stitch_is_pure_and_float32() -> None:
    chunk = media.speech_like(1.5, seed=4, peak=0.9).astype(np.float64)
    before = chunk.copy()
    out = output.stitch([chunk])
    assert np.array_equal(chunk, before)
    assert out.dtype == np.float32 and out.ndim == 1


def test_stitch_of_nothing_audible_is_empty() -> None:
    assert output.stitch([]).size == 0
    assert output.stitch([np.zeros(SR, np.float32), media.noise(0.5, dbfs=-90.0)]).size == 0


# --- encode and tags -------------------------------------------------------------------------

TAGS = output.Tags(title="Bonjour tout le monde", voice="Alice")


@cache
def speech() -> np.ndarray:
    return output.stitch([media.speech_like(4.0, seed=11)])


@pytest.mark.parametrize(("fmt", "rate"), [("ogg", 48000), ("mp3", 44100), ("wav", 44100)])
def test_encode_decodes_back_with_tags(fmt: str, rate: int) -> None:
    pcm = speech()
    data = output.encode(pcm, fmt, tags=TAGS)

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
        assert tags["WCOP"].url == output.LICENCE_URL
    if fmt == "wav":  # and a RIFF INFO list, which most desktop players read
        with av.open(io.BytesIO(data)) as container:
            info = container.metadata
        assert (info["title"], info["artist"], info["copyright"]) == (TAGS.title, "Alice", "CC-BY-NC-SA-4.0")


def test_encode_rejects_unknown_format_and_empty_audio() -> None:
    with pytest.raises(ValueError, match="aiff"):
        output.encode(speech(), "aiff")
    with pytest.raises(ValueError, match="no audio"):
        output.encode(np.zeros(0, np.float32), "ogg")


def _kbps(data: bytes, seconds: float) -> float:
    return len(data) * 8 / seconds / 1000


def test_fit_to_limit_steps_the_bitrate_down() -> None:
    pcm, seconds = speech(), speech().size / SR
    roomy = output.fit_to_limit(pcm, "ogg", 10 * 1024 * 1024, TAGS)
    assert _kbps(roomy, seconds) == pytest.approx(64, rel=0.25)

    limit = int(40_000 * seconds / 8)  # room for ~40 kbit/s: 48k is too much, 32k fits
    fitted = output.fit_to_limit(pcm, "ogg", limit, TAGS)
    assert len(fitted) <= limit
    assert _kbps(fitted, seconds) == pytest.approx(32, rel=0.25)
    assert mutagen.File(io.BytesIO(fitted)).tags["ARTIST"] == ["Alice"]
    assert media.decode(fitted)[0].shape[1] / 48000 == pytest.approx(seconds, abs=0.03)

    mp3 = output.fit_to_limit(pcm, "mp3", int(70_000 * seconds / 8), TAGS)
    assert _kbps(mp3, seconds) == pytest.approx(64, rel=0.2)


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
    packets = list(output.opus_packets(chunks))

    assert all(_toc_frame_ms(p) == (20, 0) for p in packets)
    each = media.decode_opus_packets_each(packets)
    assert {e.shape for e in each} == {(2, output.OPUS_FRAME_SAMPLES)}
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

    packets = output.opus_packets(chunks())
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
    packets = list(output.opus_packets([np.zeros(0, np.float32), pcm48], sample_rate=48000))
    assert len(packets) == pytest.approx(50, abs=2)
    assert {e.shape for e in media.decode_opus_packets_each(packets)} == {(2, 960)}


# --- OpusPacketizer: the same packets however the audio arrives --------------------------------


def _fed(pcm: np.ndarray, cuts: np.ndarray, **options: int) -> list[bytes]:
    packetizer = output.OpusPacketizer(**options)
    packets: list[bytes] = []
    for piece in np.split(pcm, cuts):
        packets += packetizer.feed(piece)
    return packets + packetizer.flush()


@pytest.mark.parametrize("seed", range(4))
def test_packets_fed_in_pieces_are_the_packets_of_the_whole(seed: int) -> None:
    pcm = media.speech_like(2.5, seed=seed)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, pcm.size, size=int(rng.integers(1, 40))))
    whole = list(output.opus_packets([pcm]))
    assert _fed(pcm, cuts) == whole  # packet for packet, byte for byte
    assert len(whole) == pytest.approx(2.5 / 0.02, abs=2)


def test_packets_fed_a_few_samples_at_a_time_are_the_same_too() -> None:
    pcm = media.speech_like(0.5, seed=7)
    assert _fed(pcm, np.arange(7, pcm.size, 7)) == list(output.opus_packets([pcm]))
    pcm48 = media.speech_like(0.5, sample_rate=48000, seed=7)
    assert _fed(pcm48, np.arange(500, pcm48.size, 500), sample_rate=48000, bitrate=64_000) == list(
        output.opus_packets([pcm48], sample_rate=48000, bitrate=64_000)
    )


def test_each_feed_returns_every_whole_packet_it_can_and_holds_the_rest() -> None:
    packetizer = output.OpusPacketizer()
    assert packetizer.feed(np.full(400, 0.1, np.float32)) == []  # under one 20 ms frame: held
    second = packetizer.feed(media.speech_like(1.0, seed=1))
    assert len(second) >= 49  # all but what the resampler keeps for its filter
    assert packetizer.samples_in == 400 + SR
    last = packetizer.flush()
    assert 1 <= len(last) <= 3 and packetizer.packets_out == len(second) + len(last)
    assert packetizer.flush() == []
    with pytest.raises(ValueError, match="after flush"):
        packetizer.feed(np.zeros(10, np.float32))


def test_packetizer_cleans_its_input_like_the_file_encoder() -> None:
    pcm = media.speech_like(0.4, seed=2)
    dirty = pcm.copy()
    dirty[[100, 2000]] = [np.nan, np.inf]
    dirty[5000] = 3.0
    clean = pcm.copy()
    clean[[100, 2000, 5000]] = [0.0, 1.0, 1.0]
    assert list(output.opus_packets([dirty.astype(np.float64)])) == list(output.opus_packets([clean]))


def test_twenty_seconds_of_live_speech_fit_the_wire_budget() -> None:
    # issue 18: ≤ 200 KB per 20 s on the wire, against 1.76 MB of int16 PCM
    pcm = output.stitch([media.speech_like(20.0, seed=0)])
    live = sum(map(len, output.opus_packets([pcm])))
    assert live <= 200_000
    assert (
        sum(map(len, output.opus_packets([pcm], bitrate=96_000))) > 1.2 * live
    )  # the bitrate is what counts


# --- the engine's error and formats ------------------------------------------------------------


def test_a_file_too_big_is_the_engine_error_with_its_numbers() -> None:
    with pytest.raises(output.OutputTooLarge) as caught:
        output.fit_to_limit(speech(), "ogg", 2000, TAGS)
    err = caught.value
    assert (err.fmt, err.limit) == ("ogg", 2000) and err.size > 2000
    assert err.seconds == pytest.approx(speech().size / SR)
    assert isinstance(err, ValueError) and "2000 bytes" in str(err)
    again = pickle.loads(pickle.dumps(err))  # crosses back from an encoder process or a Modal container
    assert (type(again), again.args, again.size) == (output.OutputTooLarge, err.args, err.size)


def test_the_bot_words_the_engine_error_and_offers_formats_the_engine_can_write() -> None:
    from bot import audio, errors
    from bot.choices import OUTPUT_FORMATS

    engine = output.OutputTooLarge(12.5, "mp3", 300_000, 200_000)
    mapped = errors.OutputTooLarge.from_engine(engine)
    assert isinstance(mapped, errors.InvalidInput)
    assert (mapped.seconds, mapped.fmt, mapped.size, mapped.limit) == (12.5, "mp3", 300_000, 200_000)
    assert "12.5 s long" in mapped.message and "MP3 file is 293 KiB" in mapped.message
    assert audio.FORMATS == OUTPUT_FORMATS and set(OUTPUT_FORMATS) <= set(output.FORMATS)
    for name in ("stitch", "encode", "opus_packets", "Tags", "speech_level_dbfs", "BITRATE_LADDER"):
        assert getattr(audio, name) is getattr(output, name)  # re-exported, not copied


# --- boundaries --------------------------------------------------------------------------------


def test_output_imports_neither_torch_nor_the_bot() -> None:
    code = (
        "import sys, modal_tts.output, modal_tts.wire; "
        "bad = sorted(m for m in sys.modules if m == 'torch' or m == 'bot' or m.startswith('bot.')); "
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
