"""The voice limit holds across processes: the bot and the CLI (or two CLI runs, or several bot processes
sharing one PostgreSQL library) adding at once."""

from __future__ import annotations

import multiprocessing

import numpy as np

from tests.engines import open_at, voices_with_files

LIMIT = 25
GUILDS = (1, 2)  # two races, one after the other, by the same four writers: each for a guild's last slot


def _add(store, guild: int, name: str) -> None:
    """`tests.test_store.add`'s voice, here so that the spawned writers need not import that module."""
    store.add(
        guild, name, owner_id=7, reference_flac=b"fLaC-bytes", latent=np.zeros((8, 80), np.float16),
        duration_s=6.25, revision="echo-abc", consent_by=7, source="test",
    )  # fmt: skip


def _add_when_released(where: str, writer: str, barrier, results) -> None:
    """Add a voice to each guild of GUILDS, all writers starting each add at one moment. (This module
    imports little, no pytest, so that four spawned writers start quickly.)"""
    from bot.errors import VoiceLimitReached

    store = open_at(where, max_voices_per_guild=LIMIT)  # opened before the start, as a running bot is
    try:
        for guild in GUILDS:
            barrier.wait()
            try:
                _add(store, guild, f"racer{writer}")
                results.put((guild, "added"))
            except VoiceLimitReached:
                results.put((guild, "refused"))
    finally:
        store.close()


def test_writers_racing_for_the_last_slot_never_exceed_the_limit(open_test_library, library_at):
    store = open_test_library(max_voices_per_guild=LIMIT)
    for guild in GUILDS:
        for i in range(LIMIT - 1):
            _add(store, guild, f"v{i}")
    store.close()

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    procs = [spawn.Process(target=_add_when_released, args=(library_at, w, barrier, results)) for w in "abcd"]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in range(len(GUILDS) * len(procs)))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    again = open_test_library(max_voices_per_guild=LIMIT)
    for guild in GUILDS:
        assert [o for g, o in outcomes if g == guild] == ["added"] + ["refused"] * (4 - 1)
        assert again.count(guild) == LIMIT
        assert len(voices_with_files(again, guild)) == LIMIT  # one racer's recording kept, the others' not
        assert len([v for v in again.list(guild) if v.name.startswith("racer")]) == 1
