"""Speech → an audio byte stream for HTTP clients (`modal_tts.output.stream`): bytes after every block,
a valid file of its format at the end, OpenAI's 24 kHz `pcm`, and a time stretch that keeps the pitch."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from modal_tts.output import Tags
from modal_tts.output.stream import PCM_RATE, STREAM_FORMATS, StreamEncoder, content_type

RATE = 44100


def tone(seconds: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def streamed(fmt: str, blocks: list[np.ndarray], **options) -> list[bytes]:
    encoder = StreamEncoder(fmt, tags=Tags("Hello there", "Ann"), **options)
    return [encoder.feed(block) for block in blocks] + [encoder.close()]


def decode(data: bytes) -> tuple[np.ndarray, int, dict[str, str]]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        return pcm, stream.sample_rate, {**container.metadata, **stream.metadata}


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * rate / pcm.size)


@pytest.mark.parametrize("fmt", [f for f in STREAM_FORMATS if f != "pcm"])
def test_every_block_sends_bytes_and_the_whole_is_a_file(fmt: str):
    parts = streamed(fmt, [tone(1.5)] * 3)
    assert all(parts[:3]), [len(p) for p in parts]  # something leaves with every block
    pcm, rate, tags = decode(b"".join(parts))
    assert pcm.size / rate == pytest.approx(4.5, abs=0.06)
    assert dominant_hz(pcm, rate) == pytest.approx(220, abs=3)
    if fmt in ("mp3", "opus", "flac"):  # ADTS and a streamed WAV have nowhere to put tags
        assert tags["title"] == "Hello there" and tags["artist"] == "Ann"
        assert "Echo-TTS" in tags["comment"]


def test_pcm_is_openais_24_khz_16_bit_little_endian():
    data = b"".join(streamed("pcm", [tone(1.0)] * 2))
    samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768
    assert samples.size == pytest.approx(2 * PCM_RATE, abs=2)
    assert dominant_hz(samples, PCM_RATE) == pytest.approx(220, abs=2)  # the right speed when played
    assert np.abs(samples).max() == pytest.approx(0.3, abs=0.01)
    assert content_type("pcm") == "audio/pcm"


def test_a_streamed_wav_says_its_sizes_are_unknown_and_reads_to_the_end():
    data = b"".join(streamed("wav", [tone(0.5)] * 2))
    assert data[:4] == b"RIFF" and data[4:8] == b"\xff\xff\xff\xff" and data[40:44] == b"\xff\xff\xff\xff"
    pcm, rate, _ = decode(data)
    assert (pcm.size, rate) == (RATE, RATE)


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
def test_speed_stretches_time_and_keeps_the_pitch(speed: float):
    data = b"".join(streamed("flac", [tone(1.0, 330.0)] * 2, speed=speed))
    pcm, rate, _ = decode(data)
    assert pcm.size / rate == pytest.approx(2.0 / speed, rel=0.03)
    assert dominant_hz(pcm, rate) == pytest.approx(330, abs=4)
