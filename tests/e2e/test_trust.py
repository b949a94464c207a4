"""Trust: what a member could do to another member's recordings or to the server's limits."""

from __future__ import annotations

import asyncio
import errno

import pytest

from bot.errors import BackendBusy
from tests.e2e.conftest import World, clip


def _text_channel(world: World, guild) -> object:
    return next(c for c in guild.channels.values() if c.type == 0)


async def _open_form(world: World, guild, member, seconds: float, seed: int):
    note = world.fake.voice_message(
        _text_channel(world, guild), member, clip(seconds, seed=seed), duration_secs=seconds
    )
    form = await world.fake.invoke_message_command("Clone voice from message", message=note, user=member)
    await form.wait_for_answer()
    return note, form


async def test_clone_forms_are_bound_to_their_own_recording_member_and_server(world: World):
    bob_note, bob_form = await _open_form(world, world.guild, world.bob, 8.0, seed=1)
    carol_note, carol_form = await _open_form(world, world.other_guild, world.carol, 11.0, seed=2)
    assert bob_form.modal["custom_id"] != carol_form.modal["custom_id"]

    # Someone else sending Bob's form is refused, and the form stays Bob's.
    stolen = await world.fake.submit_modal(bob_form, {"name": "Stolen", "consent": "yes"}, user=world.alice)
    refusal = await stolen.wait_for(lambda r: "belongs to someone else" in (r.content or ""))
    assert refusal.ephemeral and world.bot.store.find(world.guild.id, "Stolen") is None

    # Bob sends his form after Carol opened hers: Bob's clip, Bob's server, Bob's consent.
    bob_sent = await world.fake.submit_modal(bob_form, {"name": "Bob", "consent": "yes"}, user=world.bob)
    await bob_sent.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)
    carol_sent = await world.fake.submit_modal(
        carol_form, {"name": "Carol", "consent": "YES"}, user=world.carol
    )
    await carol_sent.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)

    bob = world.bot.store.get(world.guild.id, "Bob")
    carol = world.bot.store.get(world.other_guild.id, "Carol")
    assert (bob.source, bob.consent_by, bob.owner_id) == (
        f"message:{bob_note.id}",
        world.bob.id,
        world.bob.id,
    )
    assert (carol.source, carol.consent_by) == (f"message:{carol_note.id}", world.carol.id)
    assert bob.duration_s == pytest.approx(8.0, abs=0.3) and carol.duration_s == pytest.approx(11.0, abs=0.3)
    assert world.bot.store.find(world.guild.id, "Carol") is None
    assert world.bot.store.find(world.other_guild.id, "Bob") is None


async def test_a_form_sent_twice_or_from_before_a_restart_is_answered_and_clones_nothing(world: World):
    _, form = await _open_form(world, world.guild, world.bob, 8.0, seed=1)
    first = await world.fake.submit_modal(form, {"name": "Once", "consent": "yes"}, user=world.bob)
    await first.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)

    again = await world.fake.submit_modal(form, {"name": "Twice", "consent": "yes"}, user=world.bob)
    expired = await again.wait_for(lambda r: "expired" in (r.content or ""))
    assert expired.ephemeral
    stale = await world.fake.submit_modal(
        form, {"name": "Stale", "consent": "yes"}, user=world.bob, custom_id="clone-voice:1234"
    )
    assert (await stale.wait_for(lambda r: "expired" in (r.content or ""))).ephemeral
    assert [v.name for v in world.bot.store.list(world.guild.id)] == ["Once"]


# About 11 s of speech by the bot's estimate (14 characters a second).
PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog, then rests in the shade of an old oak tree "
    "while the farmer counts his sheep twice."
)


async def _answers(records):
    """Each request's outcome: the voice message it posted (by caption edit) or its refusal."""
    outcomes = []
    for record in records:
        reply = await record.wait_for(
            lambda r: (
                "Slow down" in (r.content or "")
                or "resets at midnight" in (r.content or "")
                or "🗣️" in (r.content or "")
            ),
            timeout=60,
        )
        outcomes.append("spoke" if "🗣️" in reply.content else "refused")
    return outcomes


async def _settings(world: World, **options) -> None:
    await (await world.fake.invoke("settings", options, user=world.admin)).wait_for_answer()


def _usage(world: World) -> list[tuple[int, float]]:
    return world.bot.store.db.execute("select user_id, audio_seconds from usage").fetchall()


async def test_simultaneous_says_from_one_member_get_one_turn_per_cooldown(world: World):
    world.add_voice("Ada", world.alice)
    await _settings(world, cooldown_seconds=60)
    # Hold the three acknowledgements so that all three requests are checked at about the same moment.
    world.fake.arm_fault("POST /interactions/*/callback", "slow", count=3, delay=0.5)
    records = await asyncio.gather(
        *(
            world.fake.invoke("say", {"text": f"Number {n}.", "voice": "Ada"}, user=world.alice)
            for n in range(3)
        )
    )
    assert sorted(await _answers(records)) == ["refused", "refused", "spoke"]
    assert len(_usage(world)) == 1


async def test_simultaneous_says_cannot_overrun_the_daily_quota(world: World):
    world.add_voice("Ada", world.alice)
    await _settings(world, daily_quota_minutes=1)
    # A request reserves the most it can deliver (about 24 s for PARAGRAPH): one fits beside 30 s used.
    world.bot.store.record_usage(world.guild.id, world.bob.id, kind="say", audio_seconds=30.0, gpu_seconds=0)
    members = (world.alice, world.bob, world.admin)
    records = await asyncio.gather(
        *(world.fake.invoke("say", {"text": PARAGRAPH, "voice": "Ada"}, user=m) for m in members)
    )
    assert sorted(await _answers(records)) == ["refused", "refused", "spoke"]
    assert len(_usage(world)) == 2  # the 30 s already used, and the one request that fitted
    assert world.bot.limits.reserved_seconds(world.guild.id) == 0


async def test_a_failed_say_charges_nothing_and_starts_no_cooldown(world: World):
    world.add_voice("Ada", world.alice)
    await _settings(world, cooldown_seconds=60, daily_quota_minutes=1)
    world.backend.failure = BackendBusy("full")
    busy = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    await busy.wait_for(lambda r: "busy" in (r.content or ""), timeout=20)
    world.backend.failure = None

    # Discord refuses the upload: the member is told, and nothing is charged.
    world.fake.arm_fault("POST /channels/*/messages", "too_large")
    lost = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    told = await lost.wait_for(lambda r: "didn't accept the audio file" in (r.content or ""), timeout=60)
    assert told.ephemeral and _usage(world) == []

    spoke = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    assert await _answers([spoke]) == ["spoke"]
    assert [user for user, _ in _usage(world)] == [world.alice.id]
    assert world.bot.limits.reserved_seconds(world.guild.id) == 0


async def test_a_voice_deleted_while_queued_is_explained_and_the_queue_goes_on(world: World):
    world.add_voice("Ada", world.alice)
    world.add_voice("Zed", world.bob)
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)
    first = await world.fake.invoke("say", {"text": "I go first.", "voice": "Ada"}, user=world.alice)
    await first.wait_for(lambda r: "Speaking now" in (r.content or ""), timeout=30)
    queued = await world.fake.invoke("say", {"text": "I was queued.", "voice": "Zed"}, user=world.bob)
    await queued.wait_for(lambda r: "position 1" in (r.content or ""), timeout=30)
    await (await world.fake.invoke("voice delete", {"name": "Zed"}, user=world.bob)).wait_for_answer()

    told = await queued.wait_for(lambda r: "was deleted before I got to it" in (r.content or ""), timeout=60)
    assert told.ephemeral and "Something went wrong" not in told.content
    await world.fake.wait_until(lambda: world.bot.playback.queue(world.guild.id) == [], timeout=60)


async def test_silence_from_the_engine_is_named_and_not_posted(world: World):
    world.add_voice("Ada", world.alice)
    world.backend.silent = True
    record = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    told = await record.wait_for(lambda r: "returned silence" in (r.content or ""), timeout=30)
    assert told.ephemeral and not [m for m in world.fake.channel_messages() if m.flags & 8192]
    assert _usage(world) == []


async def test_an_expired_upload_and_a_full_disk_are_named(world: World, monkeypatch):
    upload = world.fake.attachment("gone.ogg", clip(), content_type="audio/ogg")
    del world.fake.world.cdn[upload.id]  # the link expired between upload and /clone
    record = await world.fake.invoke(
        "clone", {"name": "Gone", "consent": True}, user=world.alice, attachments=[upload]
    )
    told = await record.wait_for(lambda r: "no longer on Discord" in (r.content or ""), timeout=30)
    assert told.ephemeral

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(world.bot.store, "add", disk_full)
    upload = world.fake.attachment("ok.ogg", clip(), content_type="audio/ogg")
    record = await world.fake.invoke(
        "clone", {"name": "Full", "consent": True}, user=world.alice, attachments=[upload]
    )
    told = await record.wait_for(lambda r: "disk is full" in (r.content or ""), timeout=30)
    assert told.ephemeral and world.bot.store.list(world.guild.id) == []


async def test_a_file_posted_when_the_usage_cant_be_written_is_told_as_posted_and_still_counts(
    world: World, monkeypatch
):
    from bot.errors import LibraryFull

    world.add_voice("Ada", world.alice)
    await _settings(world, cooldown_seconds=60)
    record_usage = world.bot.store.record_usage

    def disk_full(*args, **kwargs):
        raise LibraryFull(world.bot.config.data_dir)

    monkeypatch.setattr(world.bot.store, "record_usage", disk_full)
    spoke = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    assert await _answers([spoke]) == ["spoke"]  # the file is there, and the member is told so
    assert not [r for r in spoke.replies if "disk is full" in (r.content or "")]
    assert world.bot.limits.reserved_seconds(world.guild.id) == 0
    again = await world.fake.invoke("say", {"text": "Hello again.", "voice": "Ada"}, user=world.alice)
    assert await _answers([again]) == ["refused"]  # the delivery started the cooldown all the same

    monkeypatch.setattr(world.bot.store, "record_usage", record_usage)  # space freed
    other = await world.fake.invoke("say", {"text": "Hi.", "voice": "Ada"}, user=world.bob)
    assert await _answers([other]) == ["spoke"]
    assert sorted(user for user, _ in _usage(world)) == sorted([world.alice.id, world.bob.id])


async def test_the_member_a_voice_was_cloned_from_may_delete_it(world: World):
    """Alice clones Bob's voice message: she owns the voice, and Bob, whose voice it is, may delete it."""
    note = world.fake.voice_message(world.text_channel, world.bob, clip(8.0, seed=3), duration_secs=8.0)
    form = await world.fake.invoke_message_command("Clone voice from message", message=note, user=world.alice)
    await form.wait_for_callback()
    sent = await world.fake.submit_modal(form, {"name": "Bobs Voice", "consent": "yes"}, user=world.alice)
    card = await sent.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)
    assert f"<@{world.bob.id}>" in str(card.embeds[0]["fields"])  # the card names the speaker
    voice = world.bot.store.get(world.guild.id, "Bobs Voice")
    assert (voice.owner_id, voice.speaker_id) == (world.alice.id, world.bob.id)

    eve = world.fake.add_member(world.guild, "Eve")
    refused = await world.fake.invoke("voice delete", {"name": "Bobs Voice"}, user=eve)
    assert "the member it was cloned from" in (await refused.wait_for_answer()).content
    deleted = await world.fake.invoke("voice delete", {"name": "Bobs Voice"}, user=world.bob)
    assert "Deleted “Bobs Voice”" in (await deleted.wait_for_answer()).content
    assert world.bot.store.find(world.guild.id, "Bobs Voice") is None


async def test_a_voice_whose_latent_went_bad_is_refused_before_the_engine_and_marked(world: World):
    import numpy as np

    from bot.store.files import latent_bytes

    ada = world.add_voice("Ada", world.alice)
    bad = world.bot.store.load_latent(ada).copy()
    bad[0, 0] = np.nan  # damaged on disk, or brought in by an import of an older version
    folder = world.bot.config.data_dir / "voices" / str(world.guild.id) / ada.id
    (folder / "latent.npy").write_bytes(latent_bytes(bad))
    record = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    told = await record.wait_for(lambda r: "can't speak right now" in (r.content or ""), timeout=30)
    assert told.ephemeral and "being rebuilt" in told.content
    assert world.backend.texts == []  # it never reached the engine, nor anyone else's batch
    assert [v.id for v in world.bot.store.needing_reencode()] == [ada.id]
    assert world.bot.limits.reserved_seconds(world.guild.id) == 0
