"""The Modal class in-process (`.local()` runs its @modal.enter hooks, no token needed), tiny model."""

from __future__ import annotations

import inspect
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mutagen.oggopus import OggOpus

from modal_tts import wire
from modal_tts.params import InvalidParams, SynthesisParams
from tests import media
from tests.media import speech_like

pytestmark = pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")

FAST = SynthesisParams(steps=6, sequence_length=96).to_dict()


def test_info_reports_revision_device_and_versions(echo_tts, tiny_engine):
    info = echo_tts.info.local()
    assert info["revision"] == tiny_engine.revision
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["versions"]["echo-tts"] == "0.1.4" and info["versions"]["torch"].startswith("2.11.0")
    assert set(info["scheduler"]) == {"batches", "cut_resamples", "silence_resamples"}


def test_encode_speaker_speaks_the_wire_format(echo_tts, tiny_engine):
    pcm = speech_like(6.0)
    reply = echo_tts.encode_speaker.local(wire.pcm_to_bytes(pcm))
    latent, revision = wire.latent_from_wire(reply)
    assert revision == tiny_engine.revision
    np.testing.assert_array_equal(latent, tiny_engine.encode_speaker(pcm))


def test_synthesize_is_a_generator_of_chunks_in_order(echo_tts, tiny_engine, tiny_latent):
    texts = ["[S1] One.", "[S1] Two, a bit longer.", "[S1] Three."]
    stream = echo_tts.synthesize.local(texts, wire.latent_to_wire(tiny_latent, "r"), FAST, 11)
    assert inspect.isgenerator(stream)
    first = next(stream)  # the first chunk is available before the others are decoded
    replies = [first, *stream]
    expected = tiny_engine.synthesize(texts, tiny_latent, SynthesisParams(**FAST), seed=11)
    assert [r["index"] for r in replies] == [0, 1, 2]
    for reply, audio in zip(replies, expected, strict=True):
        _, pcm, gpu_seconds = wire.chunk_from_wire(reply)
        assert reply["sample_rate"] == 44_100 and gpu_seconds > 0
        assert pcm.size == audio.size
        np.testing.assert_allclose(pcm, np.clip(audio, -1, 1), atol=1 / 32767 + 1e-6)


def test_speak_streams_each_block_as_a_piece_of_its_chunk(echo_tts, tiny_engine, tiny_latent):
    """Wire version 2: the low-latency plan's blocks arrive one by one, and join into the chunk that the
    engine makes on its own."""
    texts = ["[S1] One, a sentence long enough for two blocks.", "[S1] Two."]
    params = SynthesisParams(steps=4, block_plan="low-latency", silence_guard_s=None)
    request = wire.speak_request_to_wire(wire.SpeakRequest(texts, tiny_latent, "r", params.to_dict(), 11))
    stream = echo_tts.speak.local(request)
    assert inspect.isgenerator(stream)
    pieces = [wire.reply_from_wire(message) for message in stream]
    assert all(isinstance(p, wire.PcmChunk) for p in pieces)
    assert [(p.index, p.block, p.last) for p in pieces] == [
        (0, 0, False),
        (0, 1, True),
        (1, 0, False),
        (1, 1, True),
    ]
    expected = tiny_engine.synthesize(texts, tiny_latent, params, seed=11)
    for index, audio in enumerate(expected):
        joined = np.concatenate([p.audio for p in pieces if p.index == index])
        np.testing.assert_allclose(joined, np.clip(audio, -1, 1), atol=1 / 32767 + 1e-6)


@pytest.mark.parametrize("voice_message", [False, True], ids=["attachment", "voice-message"])
def test_speak_can_return_the_finished_file(echo_tts, tiny_engine, tiny_latent, voice_message):
    """Output "file": progress per chunk, then the stitched, tagged file the bot would have made itself."""
    from modal_tts import output

    texts = ["[S1] One.", "[S1] Two, a bit longer."]
    spec = wire.FileSpec(
        "ogg", title="One.", voice="Ada", limit_bytes=10_000_000, voice_message=voice_message
    )
    request = wire.speak_request_to_wire(wire.SpeakRequest(texts, tiny_latent, "r", FAST, 11, "file", spec))
    replies = [wire.reply_from_wire(m) for m in echo_tts.speak.local(request)]
    *progress, done = replies
    assert [(p.done, p.total) for p in progress] == [(1, 2), (2, 2)] and all(p.peak > 0 for p in progress)
    assert isinstance(done, wire.EncodedFile) and done.format == "ogg" and done.gpu_seconds > 0
    pcm = output.stitch(tiny_engine.synthesize(texts, tiny_latent, SynthesisParams(**FAST), seed=11))
    assert done.seconds == pytest.approx(pcm.size / 44_100)
    tags = output.Tags(title="One.", voice="Ada")
    if voice_message:
        from modal_tts.output import voice_messages

        expected = voice_messages.voice_message(pcm, tags=tags, limit_bytes=10_000_000)
        assert done.waveform == expected.waveform
    else:
        assert done.waveform is None
    # The same audio and tags as encoding the engine's own output here (Ogg serial numbers are random).
    ours = output.fit_to_limit(pcm, "ogg", 10_000_000, tags)
    np.testing.assert_array_equal(media.decode(done.data)[0], media.decode(ours)[0])
    assert OggOpus(io.BytesIO(done.data))["title"] == ["One."]


def test_speak_can_return_live_opus_packets(echo_tts, tiny_engine, tiny_latent):
    """Output "opus": each block's 20 ms packets as it is decoded, one encoder over the request: the same
    packets the bot's own live encoder makes from the same speech."""
    from modal_tts import output

    texts = ["[S1] One, a sentence long enough for two blocks.", "[S1] Two."]
    params = SynthesisParams(steps=4, block_plan="low-latency", silence_guard_s=None)
    request = wire.speak_request_to_wire(
        wire.SpeakRequest(texts, tiny_latent, "r", params.to_dict(), 11, "opus")
    )
    blocks = [wire.reply_from_wire(m) for m in echo_tts.speak.local(request)]
    assert all(isinstance(b, wire.OpusBlock) for b in blocks)
    assert [(b.index, b.block, b.last) for b in blocks] == [
        (0, 0, False),
        (0, 1, True),
        (1, 0, False),
        (1, 1, True),
    ]
    assert blocks[0].samples == 32 * 2048 and len(blocks[0].packets) >= 70  # 1.49 s: playable at once
    expected = tiny_engine.synthesize(texts, tiny_latent, params, seed=11)
    assert [p for b in blocks for p in b.packets] == list(output.opus_packets(expected))


def test_the_image_pins_the_locked_audio_packages():
    """The container encodes with the PyAV and mutagen the tests ran (the lock's, for its Python 3.11)."""
    from importlib.metadata import version

    source = (Path(__file__).parents[1] / "modal_tts" / "app.py").read_text()
    for package in ("av", "mutagen", "torch", "echo-tts"):
        assert f'"{package}=={version(package)}"' in source, package


def test_speak_refuses_a_bot_of_another_wire_version(echo_tts, tiny_latent):
    request = wire.speak_request_to_wire(wire.SpeakRequest(["[S1] x"], tiny_latent, "r", FAST, 0))
    with pytest.raises(wire.WireVersionMismatch, match="voicebot deploy"):
        next(echo_tts.speak.local({**request, "v": 3}))


def test_bad_settings_raise_invalid_params(echo_tts, tiny_latent):
    stream = echo_tts.synthesize.local(["[S1] x"], wire.latent_to_wire(tiny_latent, "r"), {"steps": 0}, 0)
    with pytest.raises(InvalidParams, match="steps"):
        next(stream)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_damaged_latent_message_is_refused_before_sampling(echo_tts, tiny_latent, value):
    echo_tts.info.local()  # entered: the scheduler is running
    batches = echo_tts.scheduler.batches_run
    damaged = tiny_latent.copy()
    damaged[1, 2] = value
    stream = echo_tts.synthesize.local(["[S1] x"], wire.latent_to_wire(damaged, "r"), FAST, 0)
    with pytest.raises(wire.WireError, match="NaN or infinite"):
        next(stream)
    assert echo_tts.scheduler.batches_run == batches


def test_app_settings_come_from_the_environment(monkeypatch):
    import importlib

    import modal_tts.app as app_module

    monkeypatch.setenv("ECHO_GPU", "H100")
    monkeypatch.setenv("ECHO_MAX_CONTAINERS", "5")
    reloaded = importlib.reload(app_module)
    try:
        assert (reloaded.GPU, reloaded.MAX_CONTAINERS) == ("H100", 5)
        assert reloaded.MIN_CONTAINERS == 0 and reloaded.SCALEDOWN_WINDOW == 120
    finally:
        monkeypatch.undo()
        importlib.reload(app_module)


def test_eight_concurrent_requests_share_forward_passes(echo_tts, tiny_latent):
    """Inputs run concurrently in one container (`@modal.concurrent`); their rows share sampler calls."""
    latent = wire.latent_to_wire(tiny_latent, "r")
    echo_tts.info.local()  # entered: weights loaded, scheduler running
    engine, scheduler = echo_tts.engine, echo_tts.scheduler

    before = engine.forward_passes
    alone = list(echo_tts.synthesize.local(["[S1] Request number 0."], latent, FAST, 1))
    one = engine.forward_passes - before

    gate = threading.Event()
    scheduler.call(gate.wait)  # hold the GPU thread so that all eight surely wait together
    results: dict[int, list] = {}

    def ask(n: int) -> None:
        results[n] = list(echo_tts.synthesize.local([f"[S1] Request number {n}."], latent, FAST, 1))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    before, batches = engine.forward_passes, scheduler.batches_run
    for thread in threads:
        thread.start()
    for _ in range(1000):
        if len(scheduler.planner.waiting) == 8:
            break
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join()
    eight = engine.forward_passes - before
    assert scheduler.batches_run - batches == 1 and eight == one  # one batched call served all eight
    assert sorted(results) == list(range(8)) and all(len(r) == 1 for r in results.values())
    # Sharing a batch doesn't change a chunk: request 0 sounds as it did alone.
    np.testing.assert_allclose(
        wire.chunk_from_wire(results[0][0])[1], wire.chunk_from_wire(alone[0])[1], atol=2 / 32767
    )
