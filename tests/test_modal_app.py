"""The Modal class in-process (`.local()` runs its @modal.enter hooks, no token needed), tiny model."""

from __future__ import annotations

import inspect
import threading
import time

import numpy as np
import pytest

from modal_tts import wire
from modal_tts.params import InvalidParams, SynthesisParams
from tests.media import speech_like

pytestmark = pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")

FAST = SynthesisParams(steps=6, sequence_length=96).to_dict()


@pytest.fixture(scope="module")
def echo_tts(tiny_model_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("ECHO_WEIGHTS_DIR", str(tiny_model_dir))
    from modal_tts.app import EchoTTS

    obj = EchoTTS()
    yield obj
    if obj.info.local():  # entered: stop its GPU thread
        obj.scheduler.close()
    mp.undo()


def test_info_reports_revision_device_and_versions(echo_tts, tiny_engine):
    info = echo_tts.info.local()
    assert info["revision"] == tiny_engine.revision
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["versions"]["echo-tts"] == "0.1.4" and info["versions"]["torch"].startswith("2.11.0")


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
