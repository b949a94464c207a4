"""The Modal class in-process (`.local()` runs its @modal.enter hooks, no token needed), tiny model."""

from __future__ import annotations

import inspect

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

    yield EchoTTS()
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
