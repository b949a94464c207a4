"""Quotas and cooldowns hold across processes: several bot processes (or the bot and an API process)
reserving for one server at the same moment can't all pass one check."""

from __future__ import annotations

import multiprocessing

import pytest

from bot.store import open_library

PROCESSES = 4


def _reserve_when_released(data: str, url: str | None, user: int, seconds: float, barrier, results) -> None:
    from bot.errors import CooldownActive, QuotaExhausted
    from bot.store import open_library

    library = open_library(data, url)  # opened before the start, as a running process's is
    barrier.wait()
    try:
        library.reserve_speech(
            1, user, seconds, cooldown_s=60.0, daily_quota_s=60.0, now=1e9, day_start=0.0, holder=f"p{user}"
        )
        results.put("reserved")
    except QuotaExhausted:
        results.put("quota")
    except CooldownActive:
        results.put("cooldown")
    finally:
        library.close()


def _race(data: str, url: str | None, users: list[int], seconds: float) -> list[str]:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(len(users)), spawn.Queue()
    procs = [
        spawn.Process(target=_reserve_when_released, args=(data, url, user, seconds, barrier, results))
        for user in users
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_processes_racing_for_the_last_of_the_quota_never_exceed_it(tmp_path, request, engine):
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    open_library(tmp_path, url).close()  # set up before the race, as the bot's first start does
    outcomes = _race(str(tmp_path), url, users=list(range(10, 10 + PROCESSES)), seconds=25.0)
    assert outcomes == ["quota"] * (PROCESSES - 2) + ["reserved"] * 2  # 2 × 25 s fit in 60 s, a third not
    library = open_library(tmp_path, url)
    assert library.reserved_speech(1) == 50.0
    library.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_one_member_racing_from_several_processes_gets_one_request(tmp_path, request, engine):
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    open_library(tmp_path, url).close()
    outcomes = _race(str(tmp_path), url, users=[7] * PROCESSES, seconds=1.0)
    assert outcomes == ["cooldown"] * (PROCESSES - 1) + ["reserved"]
