"""One server's damaged voice fails its own request only: refused on arrival by the scheduler (tiny
model), by the wire format in the GPU container, and by the bot before it spends a Modal call."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bot.errors import SpeakerLatentRejected
from bot.tts.base import SpeakerLatent
from bot.tts.modal_backend import ModalBackend, _map_error
from modal_tts import wire
from modal_tts.engine import Row
from modal_tts.params import InvalidLatent, InvalidParams, SynthesisParams, chunk_seed
from modal_tts.scheduler import Scheduler
from tests.media import speech_like

FAST = SynthesisParams(steps=6, sequence_length=96)

DAMAGED = {
    "nan": lambda good: np.where(np.arange(good.size).reshape(good.shape) == 5, np.nan, good).astype(
        np.float16
    ),
    "7x80": lambda good: good[:7],
    "8x79": lambda good: good[:8, :79],
}


def test_damaged_voices_fail_alone_and_the_others_in_their_batch_speak(tiny_engine, tiny_latent):
    other = tiny_engine.encode_speaker(speech_like(9.0, seed=2))
    requests = {"a": ("[S1] First server.", tiny_latent, 10), "b": ("[S1] Last server.", other, 30)}
    scheduler = Scheduler(tiny_engine, gather_seconds=0.0)
    try:
        gate = threading.Event()
        scheduler.call(gate.wait)  # hold the GPU thread so that they all surely arrive together
        results: dict[str, list] = {}

        def ask(name: str) -> None:
            text, latent, seed = requests[name]
            results[name] = list(scheduler.stream([text], latent, FAST, seed, chunk_timeout=60))

        threads = [threading.Thread(target=ask, args=(name,)) for name in requests]
        threads[0].start()
        for damage, make in DAMAGED.items():
            bad = make(np.ascontiguousarray(tiny_latent))
            with pytest.raises(InvalidLatent):
                list(scheduler.stream([f"[S1] Server with {damage}."], bad, FAST, 20, chunk_timeout=60))
        threads[1].start()
        for _ in range(1000):
            if len(scheduler.planner.waiting) == 2:
                break
            threading.Event().wait(0.01)
        gate.set()
        for thread in threads:
            thread.join()
    finally:
        scheduler.close()
    assert scheduler.batches_run == 1  # the two good requests still shared their call
    for name, (text, latent, seed) in requests.items():
        ((_, alone),) = tiny_engine.synthesize_rows([Row(text, latent, chunk_seed(seed, 0))], FAST)
        (chunk,) = results[name]
        np.testing.assert_allclose(chunk.audio, alone, atol=2e-4)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_the_wire_refuses_a_latent_with_nan_or_infinite_values(value):
    latent = np.zeros((8, 80), np.float16)
    latent[3, 7] = value
    with pytest.raises(wire.WireError, match="NaN or infinite"):
        wire.latent_from_wire(wire.latent_to_wire(latent, "rev"))
    assert issubclass(wire.WireError, ValueError)  # the bot maps it to "invalid request"


def test_the_engine_checks_latents_with_params_check():
    from modal_tts import engine, params

    assert engine.check_latent is params.check_latent


def test_a_damaged_latent_keeps_its_type_through_modal():
    """Modal pickles a container's exception and unpickles it in the bot: the type must survive."""
    from modal._serialization import deserialize, serialize

    raised = deserialize(serialize(InvalidLatent("A speaker latent contains NaN or infinite values.")), None)
    assert type(raised) is InvalidLatent and isinstance(raised, InvalidParams)
    mapped = _map_error(raised, 5.0)
    assert isinstance(mapped, SpeakerLatentRejected) and "NaN" in mapped.detail
    assert "damaged" in mapped.message and "rebuilt from its recording" in mapped.message
    # Any other bad setting is still a plain invalid request, not the voice's fault.
    assert not isinstance(
        _map_error(InvalidParams("steps is 0; allowed is 1 to 200."), 5.0), SpeakerLatentRejected
    )


async def test_the_modal_backend_refuses_a_damaged_voice_without_a_modal_call():
    looked_up: list[int] = []

    def lookup() -> object:
        looked_up.append(1)
        raise AssertionError("a damaged voice must not cost a Modal call")

    latent = np.zeros((8, 80), np.float16)
    latent[0, 0] = np.nan
    backend = ModalBackend(lookup=lookup, retry_delay=0, timeout=5)
    with pytest.raises(SpeakerLatentRejected, match="damaged") as info:
        async for _ in backend.synthesize(["[S1] Hello."], SpeakerLatent(latent, "rev"), FAST, 1):
            pass
    assert "NaN" in info.value.detail and looked_up == []
