"""Trust: what a member could do to another member's recordings or to the server's limits."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import World, clip


def _text_channel(world: World, guild) -> object:
    return next(c for c in guild.channels.values() if c.type == 0)


async def _open_form(world: World, guild, member, seconds: float, seed: int):
    note = world.fake.voice_message(
        _text_channel(world, guild), member, clip(seconds, seed=seed), duration_secs=seconds
    )
    form = await world.fake.invoke_message_command("Clone voice from message", message=note, user=member)
    await form.wait_for_callback()
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
