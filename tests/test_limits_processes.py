"""Quotas and cooldowns hold across processes: several bot processes (or the bot and an API process)
reserving for one server at the same moment can't all pass one check."""

from __future__ import annotations

import multiprocessing

from bot.store import open_library  # and no pytest: the four spawned racers import only this module

PROCESSES = 4


def _race_when_released(data: str, url: str | None, user: int, barrier, results) -> None:
    """Two races, each started at one moment by every process: for the last of a server's quota (each
    its own member), then for one member's single request slot."""
    from bot.errors import CooldownActive, QuotaExhausted
    from bot.store import open_library

    library = open_library(data, url)  # opened before the start, as a running process's is
    try:
        for guild, member, seconds in ((1, user, 25.0), (2, 7, 1.0)):
            barrier.wait()
            try:
                library.reserve_speech(
                    guild, member, seconds, cooldown_s=60.0, daily_quota_s=60.0, now=1e9, day_start=0.0,
                    holder=f"p{user}",
                )  # fmt: skip
                results.put((guild, "reserved"))
            except QuotaExhausted:
                results.put((guild, "quota"))
            except CooldownActive:
                results.put((guild, "cooldown"))
    finally:
        library.close()


def test_processes_racing_for_a_quota_or_one_members_slot_never_overrun_it(tmp_path, request, engine):
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    open_library(tmp_path, url).close()  # set up before the race, as the bot's first start does
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(PROCESSES), spawn.Queue()
    procs = [
        spawn.Process(target=_race_when_released, args=(str(tmp_path), url, 10 + n, barrier, results))
        for n in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in range(2 * PROCESSES))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # 2 × 25 s fit in server 1's 60 s, a third not; member 7 of server 2 gets one request in flight
    assert [o for g, o in outcomes if g == 1] == ["quota"] * (PROCESSES - 2) + ["reserved"] * 2
    assert [o for g, o in outcomes if g == 2] == ["cooldown"] * (PROCESSES - 1) + ["reserved"]
    library = open_library(tmp_path, url)
    assert library.reserved_speech(1) == 50.0 and library.reserved_speech(2) == 1.0
    library.close()
