"""The voice limit holds across processes: the bot and the CLI (or two CLI runs, or several bot processes
sharing one PostgreSQL library) adding at once."""

from __future__ import annotations

import multiprocessing

import pytest

from tests.engines import open_at, voices_with_files
from tests.test_store import add

LIMIT = 25


def _add_when_released(where: str, writer: str, barrier, results) -> None:
    from bot.errors import VoiceLimitReached

    store = open_at(where, max_voices_per_guild=LIMIT)  # opened before the start, as a running bot is
    barrier.wait()
    try:
        add(store, 1, f"racer{writer}")
        results.put("added")
    except VoiceLimitReached:
        results.put("refused")
    finally:
        store.close()


@pytest.mark.parametrize("trial", range(2))
def test_writers_racing_for_the_last_slot_never_exceed_the_limit(open_test_library, library_at, trial):
    store = open_test_library(max_voices_per_guild=LIMIT)
    for i in range(LIMIT - 1):
        add(store, 1, f"v{i}")
    store.close()

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    procs = [spawn.Process(target=_add_when_released, args=(library_at, w, barrier, results)) for w in "abcd"]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    assert outcomes == ["added"] + ["refused"] * (4 - 1)
    again = open_test_library(max_voices_per_guild=LIMIT)
    assert again.count(1) == LIMIT
    assert len(voices_with_files(again, 1)) == LIMIT  # one racer's recording kept, the others' not
    assert len([v for v in again.list(1) if v.name.startswith("racer")]) == 1
