"""The bot as Discord members meet it: real discord.py client, loopback Discord, tiny model."""

from __future__ import annotations

import asyncio
import base64
import io

import av
import mutagen
import pytest

from bot.errors import BackendNotDeployed, BackendTimedOut
from tests.e2e.conftest import World, clip
from tests.fakediscord.models import Perm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXPECTED_COMMANDS = {
    "clone",
    "say",
    "voices",
    "voice",
    "join",
    "leave",
    "skip",
    "stop",
    "settings",
    "Clone voice from message",
    "Speak message",
    "Check for AI voice",
    "forget",
    "myvoices",
    "apikey",
}


def decode_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return sum(f.samples for f in container.decode(audio=0)) / container.streams.audio[0].rate


async def test_commands_are_synced_with_user_facing_descriptions(world: World):
    commands = {c["name"]: c for c in world.fake.commands()}
    assert EXPECTED_COMMANDS <= set(commands)
    say = commands["say"]
    assert say["description"] == "Say something in a cloned voice."
    options = {o["name"]: o for o in say["options"]}
    assert options["voice"].get("autocomplete") is True
    assert [c["value"] for c in options["mode"]["choices"]] == ["auto", "file", "channel"]
    subcommands = {o["name"] for o in commands["voice"]["options"]}
    assert subcommands == {"info", "rename", "delete", "default", "usage"}
    assert commands["Speak message"]["type"] == 3
    # The settings command is hidden from members without Manage Server by default.
    assert int(commands["settings"]["default_member_permissions"]) == Perm.MANAGE_GUILD


async def test_clone_with_consent_shows_progress_and_a_voice_card(world: World):
    world.without_speaker_consent()
    upload = world.fake.attachment("ada.ogg", clip(), content_type="audio/ogg")
    record = await world.fake.invoke(
        "clone", {"name": "Ada", "consent": True}, user=world.alice, attachments=[upload]
    )
    final = await record.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)
    assert record.callback_type == 5 and record.ephemeral
    steps = [r.content for r in record.edits]
    assert steps[:3] == ["Downloading the recording…", "Checking the audio…", "Learning the voice…"]
    assert final.embeds[0]["title"] == "🎙️ New voice: Ada"
    assert "7.0 s" in str(final.embeds[0]["fields"]) and f"<@{world.alice.id}>" in str(final.embeds[0])
    voice = world.bot.store.get(world.guild.id, "ada")
    assert (voice.owner_id, voice.consent_by, voice.source) == (
        world.alice.id,
        world.alice.id,
        "attachment:ada.ogg",
    )


@pytest.mark.parametrize(
    ("options", "data", "too_big", "message"),
    [
        ({"name": "Ada", "consent": False}, clip(), None, "permission"),
        ({"name": "Ada!", "consent": True}, clip(), None, "1 to 32 letters"),
        ({"name": "Big", "consent": True}, b"x" * (26 * 1024 * 1024), True, "at most 25.0 MiB"),
        ({"name": "Pic", "consent": True}, b"\x89PNG\r\n\x1a\n" + bytes(100), None, "not audio"),
        ({"name": "Short", "consent": True}, clip(2.0), None, "2.0 s long"),
    ],
)
async def test_bad_clone_requests_get_one_private_message(world: World, options, data, too_big, message):
    upload = world.fake.attachment("x.ogg", data, content_type="audio/ogg")
    record = await world.fake.invoke("clone", options, user=world.alice, attachments=[upload])
    reply = await record.wait_for(lambda r: message in (r.content or ""), timeout=20)
    assert reply.ephemeral and world.bot.store.list(world.guild.id) == []
    assert "Traceback" not in (reply.content or "")
    if too_big:  # refused from Discord's size metadata: never downloaded
        assert not [r for r in world.fake.requests if "x.ogg" in r.path]


async def test_clone_voice_from_a_voice_message_via_the_context_menu(world: World):
    channel = world.guild.text_channels[0] if hasattr(world.guild, "text_channels") else None
    note = world.fake.voice_message(
        channel or next(iter(world.guild.channels.values())), world.bob, clip(8.0), duration_secs=8.0
    )
    record = await world.fake.invoke_message_command("Clone voice from message", message=note, user=world.bob)
    await record.wait_for_answer()
    assert record.callback_type == 9 and record.modal["custom_id"] == f"clone-voice:{record.id}"
    submitted = await world.fake.submit_modal(record, {"name": "Bob Voice", "consent": "yes"}, user=world.bob)
    final = await submitted.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)
    assert final.embeds[0]["title"] == "🎙️ New voice: Bob Voice" and submitted.ephemeral
    assert world.bot.store.get(world.guild.id, "Bob Voice").source == f"message:{note.id}"

    again = await world.fake.invoke_message_command("Clone voice from message", message=note, user=world.bob)
    await again.wait_for_answer()  # a modal answers once: a second try opens a new one
    refused = await world.fake.submit_modal(again, {"name": "Other", "consent": "no"}, user=world.bob)
    reply = await refused.wait_for(lambda r: "permission" in (r.content or ""))
    assert reply.ephemeral and world.bot.store.find(world.guild.id, "Other") is None


async def test_say_replies_with_a_tagged_voice_message(world: World):
    world.add_voice("Ada", world.alice)
    record = await world.fake.invoke(
        "say", {"text": "Hello there, everyone.", "voice": "Ada", "seed": 3}, user=world.alice
    )
    caption = await record.wait_for(lambda r: r.kind == "edit" and "Ada" in (r.content or ""), timeout=30)
    assert record.callback_type == 5 and not record.ephemeral
    assert "seed 3" in caption.content and "CC-BY-NC-SA-4.0" in caption.content
    posted = await world.fake.wait_for_message(lambda m: m.flags & 8192)
    (attachment,) = posted.attachments
    (upload,) = posted.files
    assert attachment["duration_secs"] > 0.5 and len(base64.b64decode(attachment["waveform"])) <= 256
    seconds = decode_seconds(upload.data)
    assert 0.5 < seconds < 31 and abs(seconds - attachment["duration_secs"]) < 0.2
    tags = mutagen.File(io.BytesIO(upload.data)).tags
    assert tags["artist"] == ["Ada"] and tags["license"] == ["CC-BY-NC-SA-4.0"]
    assert tags["comment"] == ["AI-generated speech (Echo-TTS)"]


async def test_say_sends_a_file_where_voice_messages_are_not_allowed(world: World, tmp_path):
    world.add_voice("Ada", world.alice)
    await (await world.fake.invoke("settings", {"file_format": "mp3"}, user=world.admin)).wait_for_answer()
    record = await world.fake.invoke("say", {"text": "A file, please.", "voice": "Ada"}, user=world.alice)
    final = await record.wait_for(lambda r: r.kind == "edit" and r.files, timeout=30)
    (upload,) = final.files
    assert upload.filename == "Ada.mp3" and 0.5 < decode_seconds(upload.data) < 31
    assert mutagen.File(io.BytesIO(upload.data)).tags["TPE1"].text == ["Ada"]


async def test_voices_are_listed_and_managed_with_permissions(world: World):
    world.add_voice("Ada", world.alice)
    world.add_voice("Zed", world.bob)
    listing = await world.fake.invoke("voices", {}, user=world.bob)
    reply = await listing.wait_for_answer()
    assert reply.ephemeral and "**Ada**" in reply.embeds[0]["description"]
    assert "Page 1/1 · 2 voices ·" in reply.embeds[0]["footer"]["text"]

    denied = await world.fake.invoke("voice delete", {"name": "Ada"}, user=world.bob)
    assert "Only the owner of “Ada”" in (await denied.wait_for_answer()).content
    renamed = await world.fake.invoke("voice rename", {"name": "Ada", "new_name": "Ada L"}, user=world.alice)
    assert "Renamed “Ada” to “Ada L”" in (await renamed.wait_for_answer()).content
    info = await world.fake.invoke("voice info", {"name": "ada l"}, user=world.bob)
    assert (await info.wait_for_answer()).embeds[0]["title"] == "🎙️ Ada L"
    deleted = await world.fake.invoke("voice delete", {"name": "Zed"}, user=world.admin)  # Manage Server
    assert "Deleted “Zed”" in (await deleted.wait_for_answer()).content
    assert [v.name for v in world.bot.store.list(world.guild.id)] == ["Ada L"]


async def test_a_default_voice_serves_say_and_speak_message(world: World):
    world.add_voice("Ada", world.alice)
    missing = await world.fake.invoke("say", {"text": "Hi"}, user=world.alice)
    assert "Pick a voice" in (await missing.wait_for(lambda r: "Pick" in (r.content or ""))).content
    set_default = await world.fake.invoke("voice default", {"name": "Ada"}, user=world.alice)
    assert "default voice here is now “Ada”" in (await set_default.wait_for_answer()).content

    channel = next(c for c in world.guild.channels.values() if c.type == 0)
    message = world.fake.add_message(channel, world.bob, "Read this out, please!")
    record = await world.fake.invoke_message_command("Speak message", message=message, user=world.alice)
    await world.fake.wait_for_message(lambda m: m.flags & 8192)
    await record.wait_for(lambda r: r.kind == "edit" and "🗣️" in (r.content or ""), timeout=30)
    assert record.callback_type == 5

    note = world.fake.voice_message(channel, world.bob, clip(6.0), duration_secs=6.0)
    empty = await world.fake.invoke_message_command("Speak message", message=note, user=world.alice)
    told = await empty.wait_for(lambda r: "no text" in (r.content or ""))
    assert told.ephemeral


async def test_autocomplete_and_say_never_cross_guilds(world: World):
    world.add_voice("Ada", world.alice)
    world.add_voice("Alpha Only", world.alice)
    mine = await world.fake.autocomplete(
        "say", {"text": "x", "voice": "a"}, focused="voice", user=world.alice
    )
    assert {c["name"] for c in await mine.wait_for_choices()} == {"Ada", "Alpha Only"}
    theirs = await world.fake.autocomplete(
        "say", {"text": "x", "voice": "a"}, focused="voice", user=world.carol
    )
    assert await theirs.wait_for_choices() == []
    voice_id = world.bot.store.get(world.guild.id, "Ada").id
    for name in ("Ada", voice_id):
        record = await world.fake.invoke("say", {"text": "Hello", "voice": name}, user=world.carol)
        reply = await record.wait_for(lambda r: "no voice called" in (r.content or ""), timeout=20)
        assert reply.ephemeral


async def test_settings_need_manage_server_and_set_cooldown_and_quota(world: World):
    world.add_voice("Ada", world.alice)
    denied = await world.fake.invoke("settings", {"cooldown_seconds": 60}, user=world.alice)
    assert "Manage Server" in (await denied.wait_for_answer()).content
    saved = await world.fake.invoke("settings", {"cooldown_seconds": 60}, user=world.admin)
    reply = await saved.wait_for_answer()
    assert reply.content == "Saved." and "60 s" in str(reply.embeds[0]["fields"])

    first = await world.fake.invoke("say", {"text": "One.", "voice": "Ada"}, user=world.alice)
    await first.wait_for(lambda r: r.kind == "edit" and "Ada" in (r.content or ""), timeout=30)
    second = await world.fake.invoke("say", {"text": "Two.", "voice": "Ada"}, user=world.alice)
    slow = await second.wait_for(lambda r: "Slow down" in (r.content or ""), timeout=20)
    assert slow.ephemeral

    changed = await world.fake.invoke(
        "settings", {"cooldown_seconds": 0, "daily_quota_minutes": 1}, user=world.admin
    )
    await changed.wait_for_answer()
    world.bot.store.record_usage(world.guild.id, world.bob.id, kind="say", audio_seconds=59.0, gpu_seconds=0)
    over = await world.fake.invoke("say", {"text": "Three, four, five.", "voice": "Ada"}, user=world.bob)
    quota = await over.wait_for(lambda r: "resets at midnight UTC" in (r.content or ""), timeout=20)
    assert quota.ephemeral and "of its 1 min" in quota.content


@pytest.mark.parametrize("failure", [BackendNotDeployed("no app"), BackendTimedOut(180)])
async def test_backend_failures_get_a_clear_message_and_the_bot_keeps_serving(world: World, failure):
    world.add_voice("Ada", world.alice)
    world.backend.failure = failure
    record = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    reply = await record.wait_for(lambda r: failure.message in (r.content or ""), timeout=20)
    assert reply.ephemeral and "Traceback" not in reply.content
    world.backend.failure = None
    again = await world.fake.invoke("say", {"text": "Hello again.", "voice": "Ada"}, user=world.alice)
    await again.wait_for(lambda r: r.kind == "edit" and "Ada" in (r.content or ""), timeout=30)


LONG_TEXT = " ".join(
    f"This is sentence number {i} of a long announcement, read out for everyone in the channel."
    for i in range(18)
)


async def test_say_in_a_voice_channel_starts_playing_before_the_last_chunk_exists(world: World):
    world.add_voice("Ada", world.alice)
    await world.join_voice(world.alice)
    record = await world.fake.invoke("say", {"text": LONG_TEXT, "voice": "Ada"}, user=world.alice)
    notice = await record.wait_for(lambda r: "Speaking now" in (r.content or ""), timeout=30)
    assert record.ephemeral and f"<#{world.voice_channel.id}>" in notice.content
    assert world.fake.bot_voice_channel(world.guild).id == world.voice_channel.id
    await world.fake.wait_until(lambda: len(world.backend.chunk_times) >= 4, timeout=60)
    packets = await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=30)
    assert packets[0].arrival < world.backend.chunk_times[-1]  # heard while later chunks were still coming
    # Everything arrives: each chunk of the tiny model is up to 29.7 s, so wait for a good part of it.
    await world.fake.wait_until(lambda: len(world.fake.voice_packets(world.guild)) > 500, timeout=60)
    pcm = world.fake.voice_pcm(world.guild, mono=True)
    assert float(abs(pcm).max()) > 0.01


async def test_the_queue_skip_and_stop(world: World):
    world.add_voice("Ada", world.alice)
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)
    replies = []
    for user in (world.alice, world.bob, world.alice):
        record = await world.fake.invoke("say", {"text": "Queue me, please.", "voice": "Ada"}, user=user)
        replies.append(await record.wait_for(lambda r: "🔊" in (r.content or ""), timeout=30))
    assert "Speaking now" in replies[0].content
    assert ["position 1" in replies[1].content, "position 2" in replies[2].content] == [True, True]
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=30)

    eve = world.fake.add_member(world.guild, "Eve")  # not listening, no admin rights
    for command in ("skip", "stop", "leave"):
        refused = await world.fake.invoke(command, {}, user=eve)
        told = await refused.wait_for_answer()
        assert told.ephemeral and "Only members listening in" in told.content
    assert len(world.bot.playback.queue(world.guild.id)) == 3  # nothing was ended

    skipped = await world.fake.invoke("skip", {}, user=world.bob)
    assert (await skipped.wait_for_answer()).content == "Skipped."
    await world.fake.wait_until(lambda: len(world.bot.playback.queue(world.guild.id)) == 2, timeout=5)
    stopped = await world.fake.invoke("stop", {}, user=world.bob)
    assert "cleared the queue (2 items)" in (await stopped.wait_for_answer()).content
    await world.fake.wait_until(lambda: world.bot.playback.queue(world.guild.id) == [], timeout=5)
    await asyncio.sleep(0.3)
    heard = len(world.fake.voice_packets(world.guild))
    await asyncio.sleep(0.5)
    assert len(world.fake.voice_packets(world.guild)) <= heard + 6  # at most discord.py's closing silence
    # What was played, and only that, counts as usage: the skipped item's part, perhaps a little of the
    # stopped one, nothing for the one never heard.
    usage = world.bot.store.db.execute("select user_id, audio_seconds from usage").fetchall()
    assert 1 <= len(usage) <= 2 and all(s > 0 for _, s in usage) and sum(s for _, s in usage) < 2 * 29.8

    nothing = await world.fake.invoke("skip", {}, user=world.bob)
    assert "not playing anything" in (await nothing.wait_for_answer()).content


async def test_join_and_leave(world: World):
    outside = await world.fake.invoke("join", {}, user=world.alice)
    assert "Join a voice channel first" in (await outside.wait_for_answer()).content
    await world.join_voice(world.alice)
    joined = await world.fake.invoke("join", {}, user=world.alice)
    await joined.wait_for(lambda r: "Joined" in (r.content or ""), timeout=20)
    assert world.fake.bot_voice_channel(world.guild).id == world.voice_channel.id
    assert world.bot.playback.connected_channel(world.guild.id).id == world.voice_channel.id
    left = await world.fake.invoke("leave", {}, user=world.alice)
    await left.wait_for(lambda r: r.content == "Left the voice channel.", timeout=20)
    assert world.fake.bot_voice_channel(world.guild) is None
    assert world.bot.playback.connected_channel(world.guild.id) is None


async def test_channel_mode_needs_a_voice_channel_and_permission(world: World):
    world.add_voice("Ada", world.alice)
    record = await world.fake.invoke(
        "say", {"text": "Hi.", "voice": "Ada", "mode": "channel"}, user=world.alice
    )
    reply = await record.wait_for_answer()
    assert reply.ephemeral and "Join a voice channel first" in reply.content


async def test_long_files_show_progress_and_fit_the_upload_limit(world: World):
    small = world.fake.add_guild("Small", upload_limit=300_000)
    member = world.fake.add_member(small, "Dana")
    world.add_voice("Ada", member, guild=small)
    await world.fake.wait_until(lambda: world.bot.get_guild(small.id) is not None, timeout=5)
    record = await world.fake.invoke("say", {"text": LONG_TEXT, "voice": "Ada"}, user=member)
    caption = await record.wait_for(lambda r: r.kind == "edit" and "Ada" in (r.content or ""), timeout=60)
    progress = [r.content for r in record.edits if (r.content or "").startswith("Speaking…")]
    chunks = len(world.backend.chunk_times)
    assert chunks >= 4 and progress and progress[0] == f"Speaking… 1/{chunks}"
    assert len(progress) < chunks  # throttled to about one edit a second, never one per chunk burst
    posted = await world.fake.wait_for_message(lambda m: m.flags & 8192)
    (upload,) = posted.files
    assert len(upload.data) <= 300_000  # a lower bitrate rather than a failed upload
    assert decode_seconds(upload.data) > 60 and "seed" in caption.content


async def test_settings_restrict_cloning_to_a_role_and_shape_say(world: World):
    world.without_speaker_consent()
    cloners = world.fake.add_role(world.guild, "Cloners")
    dana = world.fake.add_member(world.guild, "Dana", roles=[cloners])
    saved = await world.fake.invoke(
        "settings",
        {"clone_role": cloners, "max_text_length": 20, "default_mode": "channel"},
        user=world.admin,
    )
    fields = str((await saved.wait_for_answer()).embeds[0]["fields"])
    assert f"<@&{cloners.id}>" in fields and "20 characters" in fields and "channel" in fields

    upload = world.fake.attachment("a.ogg", clip(), content_type="audio/ogg")
    denied = await world.fake.invoke(
        "clone", {"name": "Nope", "consent": True}, user=world.alice, attachments=[upload]
    )
    assert "Only members with the @Cloners role" in (await denied.wait_for_answer()).content
    allowed = await world.fake.invoke(
        "clone",
        {"name": "Dana", "consent": True},
        user=dana,
        attachments=[world.fake.attachment("d.ogg", clip(), content_type="audio/ogg")],
    )
    await allowed.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=30)

    too_long = await world.fake.invoke("say", {"text": "x" * 21, "voice": "Dana", "mode": "file"}, user=dana)
    reply = await too_long.wait_for(lambda r: "limit here is 20" in (r.content or ""), timeout=20)
    assert reply.ephemeral
    # default mode "channel": a member outside voice is told to join one, not sent a file.
    channel_default = await world.fake.invoke("say", {"text": "Hi.", "voice": "Dana"}, user=dana)
    assert "Join a voice channel first" in (await channel_default.wait_for_answer()).content


async def test_force_speaker_changes_the_delivery_with_the_same_seed(world: World):
    world.add_voice("Ada", world.alice)
    await (await world.fake.invoke("settings", {"file_format": "mp3"}, user=world.admin)).wait_for_answer()
    files = []
    for force in (False, True, False):
        record = await world.fake.invoke(
            "say", {"text": "Same seed.", "voice": "Ada", "seed": 7, "force_speaker": force}, user=world.alice
        )
        files.append(
            (await record.wait_for(lambda r: r.kind == "edit" and r.files, timeout=30)).files[0].data
        )
    assert files[0] == files[2] and files[0] != files[1]


async def test_a_failure_while_speaking_in_voice_is_reported_privately(world: World):
    world.add_voice("Ada", world.alice)
    await world.join_voice(world.alice)
    world.backend.failure = BackendTimedOut(180)
    record = await world.fake.invoke("say", {"text": "Hello.", "voice": "Ada"}, user=world.alice)
    reply = await record.wait_for(lambda r: "didn't answer within 180 s" in (r.content or ""), timeout=20)
    assert reply.ephemeral and "Traceback" not in reply.content
    world.backend.failure = None
    again = await world.fake.invoke("say", {"text": "Hello again.", "voice": "Ada"}, user=world.alice)
    await again.wait_for(lambda r: "Speaking now" in (r.content or ""), timeout=20)
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=30)


async def test_the_gpu_is_kept_warm_only_while_in_voice_when_enabled(world: World):
    world.bot.config = world.bot.config.with_overrides(keep_warm_in_voice=True)
    await world.join_voice(world.alice)
    await (await world.fake.invoke("join", {}, user=world.alice)).wait_for_answer()
    await world.fake.wait_until(lambda: world.backend.kept_warm == [True], timeout=10)
    await (await world.fake.invoke("leave", {}, user=world.alice)).wait_for_answer()
    await world.fake.wait_until(lambda: world.backend.kept_warm == [True, False], timeout=10)


async def test_the_running_bot_keeps_a_heartbeat_for_dockers_healthcheck(world: World):
    from bot import health

    await world.fake.wait_until(lambda: health.is_healthy(world.bot.config.data_dir), timeout=10)


async def test_autoread_without_the_message_content_intent_says_what_to_enable(world: World):
    record = await world.fake.invoke("autoread me", {"state": "on"}, user=world.alice)
    reply = await record.wait_for(lambda r: "Message Content" in (r.content or ""))
    assert reply.ephemeral and "Privileged Gateway Intents" in reply.content
    assert world.bot.store.autoread_members(world.guild.id) == set()
