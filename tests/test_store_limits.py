"""The voice limit holds across processes: the bot and the CLI (or two CLI runs) adding at once."""

from __future__ import annotations

import multiprocessing

import pytest

from bot.store import VoiceStore
from tests.test_store import add

LIMIT = 25


def _add_when_released(data: str, writer: str, barrier, results) -> None:
    from bot.errors import VoiceLimitReached

    store = VoiceStore(data, max_voices_per_guild=LIMIT)  # opened before the start, as a running bot is
    barrier.wait()
    try:
        add(store, 1, f"racer{writer}")
        results.put("added")
    except VoiceLimitReached:
        results.put("refused")
    finally:
        store.close()


@pytest.mark.parametrize("trial", range(3))
def test_writers_racing_for_the_last_slot_never_exceed_the_limit(tmp_path, trial):
    data = tmp_path / "data"
    store = VoiceStore(data, max_voices_per_guild=LIMIT)
    for i in range(LIMIT - 1):
        add(store, 1, f"v{i}")
    store.close()

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    procs = [spawn.Process(target=_add_when_released, args=(str(data), w, barrier, results)) for w in "abcd"]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    assert outcomes == ["added"] + ["refused"] * (4 - 1)
    again = VoiceStore(data, max_voices_per_guild=LIMIT)
    assert again.count(1) == LIMIT
    assert len([p for p in (data / "voices" / "1").iterdir()]) == LIMIT
    again.close()
