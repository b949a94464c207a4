"""Cooldowns and quotas: reserved before the work, settled with what was delivered, released on failure."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bot.errors import CooldownActive, QuotaExhausted
from bot.limits import Limits, utc_midnight
from bot.store import GuildSettings, VoiceLibrary, open_library
from tests.test_store import add

NOON = 1_800_000_000.0 - 1_800_000_000.0 % 86_400 + 43_200  # 12:00 UTC on some day


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    store = open_library(tmp_path, url)
    yield store
    store.close()


def _usage(store: VoiceLibrary, columns: str = "user_id, audio_seconds") -> list[tuple]:
    return store._rows(f"SELECT {columns} FROM usage ORDER BY id")


async def test_a_quota_is_held_by_requests_in_flight_and_charged_with_what_was_delivered(store):
    limits = Limits(store)
    quota = GuildSettings(1, daily_quota_s=60.0)
    first = await limits.reserve(quota, 10, 40.0)
    with pytest.raises(QuotaExhausted):
        await limits.reserve(quota, 11, 25.0)  # 40 held + 25 > 60, though nothing is charged yet
    second = await limits.reserve(quota, 11, 20.0)
    assert limits.reserved_seconds(1) == 60.0
    await limits.settle(first, 31.5)
    limits.release(second)  # its upload failed
    await limits.released()
    assert _usage(store) == [(10, 31.5)] and limits.reserved_seconds(1) == 0
    assert store.reserved_speech(1) == 0  # in the library too: no process sees the seconds held
    await limits.settle(first, 31.5)  # settling twice charges once
    assert len(_usage(store)) == 1


async def test_concurrent_reservations_cannot_all_pass_one_check(store):
    limits = Limits(store)
    quota = GuildSettings(1, daily_quota_s=60.0)
    store.record_usage(1, 9, kind="say", audio_seconds=45.0, gpu_seconds=0)
    results = await asyncio.gather(
        *(limits.reserve(quota, u, 10.0) for u in (1, 2, 3)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["QuotaExhausted", "QuotaExhausted", "Reservation"]


async def test_a_cooldown_starts_only_when_something_was_delivered(store):
    limits = Limits(store)
    cooldown = GuildSettings(1, cooldown_s=60.0)
    failed = await limits.reserve(cooldown, 10, 2.0)
    with pytest.raises(CooldownActive):
        await limits.reserve(cooldown, 10, 2.0)  # one at a time per member
    assert (await limits.reserve(cooldown, 11, 2.0)).user_id == 11  # other members aren't held up
    limits.release(failed)
    spoke = await limits.reserve(cooldown, 10, 2.0)
    await limits.settle(spoke, 0.0)  # nothing was heard: no cooldown, nothing charged
    assert _usage(store) == []
    spoke = await limits.reserve(cooldown, 10, 2.0)
    await limits.settle(spoke, 2.5)
    with pytest.raises(CooldownActive):
        await limits.reserve(cooldown, 10, 2.0)


async def test_a_restarted_process_clears_what_its_killed_run_held(store):
    """A process killed mid-request leaves its reservation; its next start lets go of it, and another
    process's reservations stay."""
    cooldown = GuildSettings(1, cooldown_s=60.0, daily_quota_s=60.0)
    killed = Limits(store, holder="shards 0-1 of 4")
    other = Limits(store, holder="shards 2-3 of 4")
    await killed.reserve(cooldown, 10, 30.0)  # never settled: the process died
    kept = await other.reserve(cooldown, 11, 20.0)
    assert store.reserved_speech(1) == 50.0
    restarted = Limits(store, holder="shards 0-1 of 4")
    with pytest.raises(CooldownActive):
        await restarted.reserve(cooldown, 10, 5.0)  # before the start: still held
    await restarted.start()
    assert store.reserved_speech(1) == 20.0
    await restarted.settle(await restarted.reserve(cooldown, 10, 5.0), 4.0)
    await other.settle(kept, 19.0)
    assert sorted(_usage(store)) == [(10, 4.0), (11, 19.0)] and store.reserved_speech(1) == 0


async def test_a_reservation_ends_with_its_lease(store):
    from bot.store.quotas import RESERVATION_LEASE_S

    now = [NOON]
    quota = GuildSettings(1, daily_quota_s=60.0, cooldown_s=10.0)
    lost = Limits(store, clock=lambda: now[0], holder="gone")
    await lost.reserve(quota, 10, 50.0)
    later = Limits(store, clock=lambda: now[0], holder="here")
    with pytest.raises(QuotaExhausted):
        await later.reserve(quota, 11, 20.0)
    now[0] += RESERVATION_LEASE_S + 1
    assert (await later.reserve(quota, 10, 20.0)).seconds == 20.0


def test_the_quota_day_starts_at_midnight_utc():
    assert utc_midnight(NOON) == NOON - 43_200
    assert utc_midnight(NOON - 43_200) == NOON - 43_200


async def test_a_failed_usage_write_lets_go_of_the_reservation_and_still_counts(store, monkeypatch):
    from bot.errors import LibraryFull

    now = [NOON]
    limits = Limits(store, clock=lambda: now[0])
    settings = GuildSettings(1, daily_quota_s=60.0, cooldown_s=30.0)
    disk_full = True

    def failing_while_full(write):
        def write_unless_full(*args, **kwargs):
            if disk_full:
                raise LibraryFull(store.where)
            return write(*args, **kwargs)

        return write_unless_full

    for write in ("record_usage", "settle_speech"):  # the writes of what was delivered
        monkeypatch.setattr(store, write, failing_while_full(getattr(store, write)))
    spoke = await limits.reserve(settings, 10, 20.0)
    await limits.settle(spoke, 15.0)  # the write fails: settling says nothing, and lets go
    assert spoke.done and limits.reserved_seconds(1) == 0 and _usage(store) == []
    with pytest.raises(CooldownActive):
        await limits.reserve(settings, 10, 5.0)  # the delivery started the member's cooldown …
    now[0] += 31
    again = await limits.reserve(settings, 10, 5.0)  # … which ends: nobody is "slowed down" for good
    limits.release(again)
    with pytest.raises(QuotaExhausted):
        await limits.reserve(settings, 11, 46.0)  # the 15 s count against today's 60
    limits.release(await limits.reserve(settings, 11, 45.0))

    disk_full = False
    limits.release(await limits.reserve(settings, 12, 1.0))  # the next check writes what was held
    assert _usage(store, "user_id, audio_seconds, at") == [(10, 15.0, NOON)]
    assert limits.unrecorded(1) == []


class WindowFillingEngine:
    """The worst case a chunk can be: speech that runs to the end of every window it is given."""

    def sample_rows(self, rows, params, window):
        return np.zeros((len(rows), window, 80), np.float32)

    def end_of_speech(self, latents, index):
        return latents.shape[1]

    def decode(self, latents, index, end):
        return np.full(end * 2048, 0.25, np.float32)


async def test_many_tiny_requests_at_once_cannot_overrun_the_daily_quota(store):
    """Each "Hi." is about 0.2 s by its text, but its chunk can come back as long as its window."""
    from bot import speech
    from bot.tts.local_backend import LocalBackend

    add(store, 1, "Ada")
    limits = Limits(store)
    settings = GuildSettings(1, daily_quota_s=60.0)
    backend = LocalBackend(engine=WindowFillingEngine(), timeout=60)

    async def one(member: int) -> float:
        request = speech.plan(store, guild_id=1, user_id=member, voice_name="Ada", words="Hi.", max_chars=100)
        try:
            reservation = await limits.reserve(settings, member, speech.longest_seconds(request))
        except QuotaExhausted:
            return 0.0
        spoken = await speech.speak(store, backend, request, record_usage=False)
        await limits.settle(reservation, spoken.audio_seconds)
        return spoken.audio_seconds

    try:
        delivered = await asyncio.gather(*(one(member) for member in range(30)))
    finally:
        await backend.close()
    assert sum(delivered) <= 60.0, sorted(delivered)
    assert sum(1 for s in delivered if s) >= 1  # the quota is used, not refused outright
    assert store.audio_seconds_since(1, 0) == pytest.approx(sum(delivered))


def test_a_refusal_says_what_is_left_when_the_request_could_take_more():
    left = QuotaExhausted(52.0, 60.0, 12.5)
    assert "8.0 s of today's 1 min of speech left" in left.message and "up to 12.5 s" in left.message
    assert "has used 1 min 7 s of its 1 min" in QuotaExhausted(67.0, 60.0, 7.6).message
