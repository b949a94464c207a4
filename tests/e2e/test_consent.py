"""The speaker's own consent, end to end on the loopback Discord with the real speaker check.

The voices are flite's renderings of real speakers (tests/speech, made by bench/speech_clips.py): slt
and awb are two people. Alice clones a voice of Bob's (slt's recording); Bob agrees by replying to the
bot's request with a voice message, checked by the engine side's speaker-verification model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from tests.e2e.conftest import World

pytestmark = pytest.mark.slow

SPEECH = Path(__file__).parent.parent / "speech"


def spoken(name: str) -> bytes:
    return (SPEECH / f"{name}.ogg").read_bytes()


def speech_seconds(name: str) -> float:
    import av

    with av.open(str(SPEECH / f"{name}.ogg")) as container:
        return sum(f.samples for f in container.decode(audio=0)) / 48000


async def clone_pending(
    world: World, name: str, *, speaker, user, recording: str = "slt-reference", guild=None
):
    """`user` clones `recording` naming `speaker`; the request the bot posts, and the pending voice."""
    upload = world.fake.attachment(f"{name}.ogg", spoken(recording), content_type="audio/ogg")
    options = {"name": name, "consent": True} | ({"speaker": speaker} if speaker is not None else {})
    record = await world.fake.invoke("clone", options, user=user, attachments=[upload])
    answer = await record.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=60)
    request = await record.wait_for(lambda r: r.kind == "followup", timeout=10)
    voice = world.bot.store.find((guild or world.guild).id, name)
    assert voice is not None and voice.pending

    # the bot notes where its request went just after posting it; a person takes longer to answer
    def posted() -> bool:
        request = world.bot.store.pending_consent(voice.id)
        return request is None or request.message_id is not None  # (or it expired already)

    await world.fake.wait_until(posted, timeout=10)
    return answer, request, voice


def request_message(world: World, request):
    return world.fake.world.messages[request.message_id]


async def reply_voice(world: World, request, speaker, recording: str, channel=None):
    message = request_message(world, request)
    channel = channel or world.fake.world.channel(message.channel_id)
    return world.fake.voice_message(
        channel, speaker, spoken(recording), duration_secs=speech_seconds(recording), reply_to=message
    )


async def bot_reply_to(world: World, message):
    return await world.fake.wait_for_message(
        lambda r: (
            r.kind == "message"
            and str(r.payload.get("message_reference", {}).get("message_id")) == str(message.id)
        ),
        timeout=60,
    )


async def test_a_matching_voice_message_makes_the_voice_usable(world: World, caplog):
    caplog.set_level(logging.INFO, logger="voicebot.audit")
    answer, request, voice = await clone_pending(world, "Bobby", speaker=world.bob, user=world.alice)
    assert answer.ephemeral and answer.embeds[0]["title"] == "⏳ Waiting for consent: Bobby"
    assert f"<@{world.bob.id}> agrees" in answer.content
    # the request is public, names the server and the bot in the sentence, and pings the speaker
    assert not request.ephemeral and f"<@{world.bob.id}>" in request.content
    assert f"may speak in my voice on {world.guild.name}." in request.content
    assert world.bot.user.display_name in request.content
    assert request.components, "the request has a Decline button"

    say = await world.fake.invoke("say", {"text": "Hello there.", "voice": "Bobby"}, user=world.alice)
    refused = await say.wait_for(lambda r: "waiting for" in (r.content or ""), timeout=30)
    assert refused.ephemeral and f"<@{world.bob.id}>" in refused.content

    note = await reply_voice(world, request, world.bob, "slt-consent")
    thanks = await bot_reply_to(world, note)
    assert "can speak now" in thanks.content
    agreed = world.bot.store.get(world.guild.id, "Bobby")
    assert not agreed.pending and agreed.consent_by == world.bob.id and agreed.speaker_id == world.bob.id
    assert world.bot.store.pending_consent(voice.id) is None
    edited = await world.fake.wait_until(
        lambda: "agreed" in request_message(world, request).content and request_message(world, request),
        timeout=10,
    )
    assert not edited.components
    events = [r.audit["event"] for r in caplog.records if hasattr(r, "audit")]
    assert events[:2] == ["clone", "consent_given"]

    say = await world.fake.invoke("say", {"text": "Hello there.", "voice": "Bobby"}, user=world.alice)
    await world.fake.wait_for_message(lambda r: r.is_voice_message, timeout=60)


async def test_a_different_speaker_typed_text_and_uploads_are_refused(world: World):
    _, request, voice = await clone_pending(world, "Bobby", speaker=world.bob, user=world.alice)
    message = request_message(world, request)
    channel = world.fake.world.channel(message.channel_id)

    typed = world.fake.add_message(channel, world.bob, "I agree!", reply_to=message)
    assert "typed text, not a voice message" in (await bot_reply_to(world, typed)).content

    upload = world.fake.add_message(
        channel, world.bob, attachments=[("consent.ogg", spoken("slt-consent"))], reply_to=message
    )
    assert "an uploaded file, not a voice message" in (await bot_reply_to(world, upload)).content

    other = await reply_voice(world, request, world.bob, "awb-consent")  # someone else's voice
    refused = await bot_reply_to(world, other)
    assert (
        "doesn't sound like the voice in the recording" in refused.content
        and "4 more times" in refused.content
    )
    assert world.bot.store.get(world.guild.id, "Bobby").pending
    assert world.bot.store.pending_consent(voice.id).attempts == 1

    # Alice can't answer for Bob, even with Bob's own recording: only the speaker is listened to
    world.fake.voice_message(channel, world.alice, spoken("slt-consent"), duration_secs=4.2, reply_to=message)
    chat = world.fake.add_message(channel, world.bob, "just chatting")  # not a reply: ignored
    await world.fake.wait_until(lambda: world.fake.world.messages[chat.id] is not None, timeout=2)
    assert world.bot.store.get(world.guild.id, "Bobby").pending


async def test_the_speaker_declines(world: World):
    _, request, _voice = await clone_pending(world, "Bobby", speaker=world.bob, user=world.alice)
    (button,) = [c for row in request.components for c in row["components"]]
    stranger = await world.fake.click(request.message_id, button["custom_id"], user=world.admin)
    assert "Only" in (await stranger.wait_for_answer()).content
    pressed = await world.fake.click(request.message_id, button["custom_id"], user=world.bob)
    await pressed.wait_for_answer()
    assert world.bot.store.find(world.guild.id, "Bobby") is None
    assert "declined" in request_message(world, request).content


async def test_a_request_expires_with_a_message_to_both(world: World):
    world.bot.config = dataclasses.replace(world.bot.config, consent_expiry_hours=1 / 3600)  # a second
    _, _request, voice = await clone_pending(world, "Bobby", speaker=world.bob, user=world.alice)
    notice = await world.fake.wait_for_message(
        lambda r: r.kind == "message" and "expired" in (r.content or ""), timeout=30
    )
    assert f"<@{world.bob.id}>" in notice.content and f"<@{world.alice.id}>" in notice.content
    assert world.bot.store.find(world.guild.id, "Bobby") is None
    assert world.bot.store.pending_consent(voice.id) is None
    assert not (world.bot.store.voices_dir / str(world.guild.id) / voice.id).exists()


async def test_a_member_clones_their_own_voice(world: World):
    # from their own voice message: one step, no request
    note = world.fake.voice_message(world.text_channel, world.bob, spoken("slt-reference"), duration_secs=9.0)
    record = await world.fake.invoke_message_command("Clone voice from message", message=note, user=world.bob)
    await record.wait_for_answer()
    submitted = await world.fake.submit_modal(record, {"name": "Me", "consent": "yes"}, user=world.bob)
    final = await submitted.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=60)
    assert final.embeds[0]["title"] == "🎙️ New voice: Me" and not submitted.followups
    voice = world.bot.store.get(world.guild.id, "Me")
    assert not voice.pending and voice.speaker_id == world.bob.id

    # from an uploaded file: they confirm with a voice message like anyone else
    answer, request, _pending = await clone_pending(
        world, "Mine", speaker=None, user=world.alice, recording="awb-reference"
    )
    assert "you confirm" in answer.content and f"<@{world.alice.id}>" in request.content
    agreed = await bot_reply_to(world, await reply_voice(world, request, world.alice, "awb-consent"))
    assert "can speak now" in agreed.content and not world.bot.store.get(world.guild.id, "Mine").pending


async def test_two_servers_at_once(world: World):
    dave = world.fake.add_member(world.other_guild, "Dave")
    _, here, _bob_voice = await clone_pending(world, "Bobby", speaker=world.bob, user=world.alice)
    _, there, _dave_voice = await clone_pending(
        world, "Davey", speaker=dave, user=world.carol, recording="awb-reference", guild=world.other_guild
    )
    agreed = await bot_reply_to(world, await reply_voice(world, there, dave, "awb-consent"))
    assert "can speak now" in agreed.content
    assert not world.bot.store.get(world.other_guild.id, "Davey").pending
    assert world.bot.store.get(world.guild.id, "Bobby").pending
    agreed = await bot_reply_to(world, await reply_voice(world, here, world.bob, "slt-consent"))
    assert not world.bot.store.get(world.guild.id, "Bobby").pending


async def test_without_the_setting_a_voice_is_ready_at_once(world: World):
    await (
        await world.fake.invoke("settings", {"speaker_consent": False}, user=world.admin)
    ).wait_for_answer()
    upload = world.fake.attachment("ada.ogg", spoken("slt-reference"), content_type="audio/ogg")
    record = await world.fake.invoke(
        "clone", {"name": "Ada", "consent": True}, user=world.alice, attachments=[upload]
    )
    final = await record.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=60)
    assert final.embeds[0]["title"] == "🎙️ New voice: Ada"
    assert not world.bot.store.get(world.guild.id, "Ada").pending
