"""bot/delivery.py as auto-read will call it: live voice with a reservation and a callback, no interaction."""

from __future__ import annotations

import pytest

from bot import delivery, speech, text
from bot.errors import BackendTimedOut, CooldownActive
from tests.e2e.conftest import World


async def _reserve_and_speak(world: World, words: str, problems: list[str]) -> int:
    bot = world.bot
    settings = bot.store.settings(world.guild.id)
    request = speech.plan(
        bot.store,
        guild_id=world.guild.id,
        user_id=world.alice.id,
        voice_name="Ada",
        words=words,
        max_chars=200,
    )
    estimate = sum(text.estimate_seconds(chunk) for chunk in request.chunks)
    reservation = await bot.limits.reserve(settings, world.alice.id, estimate)

    async def on_problem(message: str) -> None:
        problems.append(message)

    channel = bot.get_channel(world.voice_channel.id)
    queued = await delivery.speak_live(
        bot, request, reservation, channel, delivery.Answer(on_problem=on_problem)
    )
    return queued.position


async def test_live_speech_without_an_interaction_counts_against_the_quota_and_cooldown(world: World):
    world.add_voice("Ada", world.alice)
    world.bot.store.update_settings(world.guild.id, cooldown_s=60.0, daily_quota_s=600.0)
    await world.join_voice(world.alice)
    problems: list[str] = []
    assert await _reserve_and_speak(world, "Read aloud, with no command.", problems) == 0
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=30)

    def usage():
        return world.bot.store.db.execute("select user_id, audio_seconds from usage").fetchall()

    # Settled when the item ends, with what was heard.
    await world.fake.wait_until(lambda: world.bot.limits.reserved_seconds(world.guild.id) == 0, timeout=60)
    ((user, seconds),) = usage()
    assert user == world.alice.id and seconds > 0 and problems == []
    with pytest.raises(CooldownActive):
        await _reserve_and_speak(world, "And again at once.", problems)


async def test_a_live_failure_without_an_interaction_goes_to_on_problem_and_charges_nothing(world: World):
    world.add_voice("Ada", world.alice)
    await world.join_voice(world.alice)
    world.backend.failure = BackendTimedOut(180)
    problems: list[str] = []
    await _reserve_and_speak(world, "This will fail.", problems)
    await world.fake.wait_until(lambda: problems, timeout=30)  # told after the reservation was released
    assert "didn't answer within 180 s" in problems[0]
    assert world.bot.store.db.execute("select count(*) from usage").fetchone() == (0,)
    assert world.bot.limits.reserved_seconds(world.guild.id) == 0
