"""Cooldowns and quotas: reserved before the work, settled with what was delivered, released on failure."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import CooldownActive, QuotaExhausted
from bot.limits import Limits, utc_midnight
from bot.store import GuildSettings, VoiceStore

NOON = 1_800_000_000.0 - 1_800_000_000.0 % 86_400 + 43_200  # 12:00 UTC on some day


@pytest.fixture
def store(tmp_path):
    store = VoiceStore(tmp_path)
    yield store
    store.close()


def _usage(store: VoiceStore) -> list[tuple[int, float]]:
    return store.db.execute("select user_id, audio_seconds from usage").fetchall()


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
    assert _usage(store) == [(10, 31.5)] and limits.reserved_seconds(1) == 0
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


def test_the_quota_day_starts_at_midnight_utc():
    assert utc_midnight(NOON) == NOON - 43_200
    assert utc_midnight(NOON - 43_200) == NOON - 43_200
