"""Privacy on the loopback Discord: /forget me across two servers, finished by the next start after a
crash part-way; /myvoices; /voice usage; and the purge of a server the bot was removed from, kept when
it is invited back within the grace period (while the bot runs, or while it is offline)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from bot import retention
from bot.client import VoiceBot
from bot.tts.local_backend import LocalBackend
from tests.e2e.conftest import SwitchableBackend, World
from tests.media import speech_like

DAY = 86_400.0


def voice_of(world: World, name: str, owner, guild, *, speaker=None):
    engine = world.backend.inner._engine
    return world.bot.store.add(
        guild.id,
        name,
        owner_id=owner.id,
        reference_flac=b"fLaC-" + name.encode(),
        latent=engine.encode_speaker(speech_like(6.0)),
        duration_s=6.0,
        revision=engine.revision,
        consent_by=owner.id,
        source="test",
        speaker_id=None if speaker is None else speaker.id,
    )


def names(world: World, store=None) -> set[str]:
    store = store or world.bot.store
    return {v.name for v in store.all_voices()}


@contextlib.asynccontextmanager
async def restarted(world: World, tiny_engine) -> AsyncIterator[VoiceBot]:
    """The bot stopped and started again on the same data folder (a new process would do the same)."""
    await world.bot.close()
    bot = VoiceBot(world.bot.config, backend=SwitchableBackend(LocalBackend(engine=tiny_engine)))
    async with world.fake.running(bot, ready_timeout=20):
        yield bot


async def test_forget_me_across_servers_is_finished_by_the_next_start_after_a_crash(
    world: World, tiny_engine
):
    voice_of(world, "AliceHere", world.alice, world.guild)
    voice_of(world, "AliceThere", world.alice, world.other_guild)  # a server the bot shares with her
    voice_of(world, "AliceByBob", world.bob, world.guild, speaker=world.alice)  # of her, owned by Bob
    voice_of(world, "Bob", world.bob, world.guild)
    world.bot.store.set_default_voice(world.guild.id, world.alice.id, "Bob")

    asked = await world.fake.invoke("forget me", user=world.alice)
    summary = await asked.wait_for_answer()
    assert summary.ephemeral and "3 voices" in summary.content
    assert "“AliceByBob”, “AliceHere”" in summary.content and "Beta: “AliceThere”" in summary.content
    buttons = {c["label"]: c["custom_id"] for row in summary.components for c in row["components"]}
    assert names(world) == {"AliceHere", "AliceThere", "AliceByBob", "Bob"}  # nothing deleted yet

    stranger = await world.fake.click(asked, buttons["Delete everything"], user=world.bob)
    assert "for the member who asked" in (await stranger.wait_for_answer()).content

    # The process dies after the first voice is deleted
    store, removed = world.bot.store, []
    remove = store._remove_voice

    def crash_after_the_first(voice):
        if removed:
            raise RuntimeError("killed")
        remove(voice)
        removed.append(voice.name)

    store._remove_voice = crash_after_the_first  # type: ignore[method-assign]
    pressed = await world.fake.click(asked, buttons["Delete everything"], user=world.alice)
    await pressed.wait_for(lambda r: "went wrong" in (r.content or ""), timeout=10)
    assert len(names(world)) == 3 and store.forgets_pending() == [world.alice.id]

    async with restarted(world, tiny_engine) as bot:
        assert names(world, bot.store) == {"Bob"}
        assert (
            bot.store.forgets_pending() == []
            and bot.store.default_voice(world.guild.id, world.alice.id) is None
        )
        again = await world.fake.invoke("forget me", user=world.alice)
        assert (await again.wait_for_answer()).content == "The bot stores nothing about you."


async def test_forget_me_confirmed_deletes_and_says_what_earlier_copies_hold(world: World):
    voice_of(world, "AliceHere", world.alice, world.guild)
    asked = await world.fake.invoke("forget me", user=world.alice)
    summary = await asked.wait_for_answer()
    buttons = {c["label"]: c["custom_id"] for row in summary.components for c in row["components"]}
    pressed = await world.fake.click(asked, buttons["Delete everything"], user=world.alice)
    done = await pressed.wait_for(lambda r: "Deleted everything" in (r.content or ""), timeout=10)
    assert "Alpha: “AliceHere”" in done.content and "backups" in done.content
    assert names(world) == set()


async def test_myvoices_lists_and_deletes_a_voice_of_the_member_owned_by_someone_else(world: World):
    voice_of(world, "AliceHere", world.alice, world.guild)
    of_her = voice_of(world, "AliceByBob", world.bob, world.guild, speaker=world.alice)
    voice_of(world, "Bob", world.bob, world.guild)
    listed = await (await world.fake.invoke("myvoices", user=world.alice)).wait_for_answer()
    text = listed.embeds[0]["description"]
    assert "**AliceByBob** · Alpha · of you" in text and "**AliceHere** · Alpha · yours" in text
    assert "Bob**" not in text.replace("AliceByBob**", "")
    choices = await (
        await world.fake.autocomplete("myvoices", {"delete": "bob"}, focused="delete", user=world.alice)
    ).wait_for_choices()
    assert [c["value"] for c in choices] == [of_her.id]
    deleted = await world.fake.invoke("myvoices", {"delete": of_her.id}, user=world.alice)
    assert "Deleted “AliceByBob” from Alpha" in (await deleted.wait_for_answer()).content
    assert names(world) == {"AliceHere", "Bob"}
    refused = await world.fake.invoke("myvoices", {"delete": "Bob"}, user=world.alice)
    assert "neither yours nor a voice of you" in (await refused.wait_for_answer()).content


async def test_voice_usage_is_for_the_owner_the_speaker_and_admins(world: World):
    voice = voice_of(world, "AliceByBob", world.bob, world.guild, speaker=world.alice)
    world.bot.store.record_usage(
        world.guild.id, world.admin.id, kind="say", audio_seconds=3.2, gpu_seconds=1, voice_id=voice.id
    )
    for member in (world.bob, world.alice, world.admin):
        shown = await (
            await world.fake.invoke("voice usage", {"name": "AliceByBob"}, user=member)
        ).wait_for_answer()
        assert shown.ephemeral and f"<@{world.admin.id}> · 3.2 s" in shown.embeds[0]["description"]
    other = voice_of(world, "Other", world.admin, world.guild)
    refused = await (
        await world.fake.invoke("voice usage", {"name": other.name}, user=world.alice)
    ).wait_for_answer()
    assert "Only the owner of “Other”" in refused.content


async def test_a_server_the_bot_left_is_purged_after_the_grace_period_unless_it_returns(
    world: World, tiny_engine
):
    here = voice_of(world, "Ada", world.alice, world.guild)
    voice_of(world, "Carol", world.carol, world.other_guild)
    store = world.bot.store
    store.add_pronunciation(world.guild.id, "GIF", "jif")
    later = time.time() + 31 * DAY

    # Removed, then invited back before the grace period ends: everything kept
    world.fake.remove_bot(world.guild)
    await world.fake.wait_until(lambda: world.guild.id in store.departures(), timeout=10)
    world.fake.invite_bot(world.guild)
    await world.fake.wait_until(lambda: store.departures() == {}, timeout=10)
    report = await retention.purge_due(store, 30, world.bot.owns_guild, now=later)
    assert report.guilds == [] and names(world) == {"Ada", "Carol"}

    # Removed for good: purged once the grace period ends, the other server untouched
    world.fake.remove_bot(world.guild)
    await world.fake.wait_until(lambda: world.guild.id in store.departures(), timeout=10)
    assert (await retention.purge_due(store, 30, world.bot.owns_guild)).guilds == []  # not yet
    report = await retention.purge_due(store, 30, world.bot.owns_guild, now=later)
    assert [g.guild_id for g in report.guilds] == [world.guild.id] and names(world) == {"Carol"}
    assert not (store.voices_dir / str(world.guild.id) / here.id).exists()
    assert store.dictionary(world.guild.id) == {} and store.departures() == {}

    # Removed while the bot was offline: noticed at the next start; invited back while offline: kept
    world.fake.invite_bot(world.guild)
    voice_of(world, "Back", world.alice, world.guild)
    await world.bot.close()
    world.fake.remove_bot(world.other_guild)
    async with restarted(world, tiny_engine) as bot:
        await world.fake.wait_until(lambda: world.other_guild.id in bot.store.departures(), timeout=10)
        bot.store.departed(world.guild.id)  # as if it had left before this start too
        await bot.close()
    world.fake.invite_bot(world.other_guild)
    async with restarted(world, tiny_engine) as bot:
        await world.fake.wait_until(lambda: world.other_guild.id not in bot.store.departures(), timeout=10)
        assert world.guild.id not in bot.store.departures()
        assert names(world, bot.store) == {"Back", "Carol"}
