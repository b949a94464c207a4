"""Self-tests of the loopback fake Discord, each driven by the real, unmodified discord.py 2.7 client.

They prove the fake is faithful enough for the bot's end-to-end tests: login and READY, command
sync, interactions with attachments and every callback path, voice playback decoded on the fake,
gateway resume, REST rate limits and errors, and a voice websocket dropped mid-playback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import discord
import discord.gateway
import discord.http
import nacl.exceptions
import pytest
from discord import app_commands

from tests.fakediscord import CallbackType, FakeDiscord, MessageFlag, Perm
from tests.fakediscord.audio import OpusPacketSource, align, chirp, encode_opus
from tests.fakediscord.leftovers import DISCORD_THREADS, assert_nothing_left_behind
from tests.fakediscord.voice import build_rtp, parse_rtp


@pytest.fixture(autouse=True)
async def leaves_nothing_behind() -> AsyncIterator[None]:
    """Every test must end with discord.py's threads stopped and no asyncio task still pending."""
    yield
    await assert_nothing_left_behind(DISCORD_THREADS)


def make_client(
    fake: FakeDiscord, *, members: bool = False
) -> tuple[discord.Client, app_commands.CommandTree]:
    intents = discord.Intents.default()
    intents.members = members
    client = discord.Client(intents=intents, connector=fake.connector(), guild_ready_timeout=0.1)
    return client, app_commands.CommandTree(client)


def play_until_done(voice: discord.VoiceClient, packets: list[bytes]) -> tuple[asyncio.Event, list]:
    """Start playing ``packets``; the event is set (from the player thread) when playback ends."""
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    errors: list = []

    def after(error: Exception | None) -> None:
        errors.append(error)
        loop.call_soon_threadsafe(finished.set)

    voice.play(OpusPacketSource(packets), after=after)
    return finished, errors


async def test_client_logs_in_sees_the_world_and_syncs_commands(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild("Test Guild", text_channels=("general", "bot-log"), voice_channels=("Voice",))
    alice = fake.add_member(guild, "alice", permissions=Perm.ATTACH_FILES | Perm.MANAGE_GUILD)
    bob = fake.add_member(guild, "bob", roles=["listeners"])
    client, tree = make_client(fake, members=True)

    @tree.command()
    async def ping(interaction: discord.Interaction) -> None:
        """Check that the bot answers."""
        await interaction.response.send_message("pong", ephemeral=True)

    voices = app_commands.Group(name="voice", description="Manage cloned voices")

    @voices.command(name="list")
    async def list_voices(interaction: discord.Interaction) -> None:
        """List the voices of this server."""
        await interaction.response.send_message(f"no voices yet, {interaction.user.display_name}")

    tree.add_command(voices)

    @tree.context_menu(name="Speak this")
    async def speak_this(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(message.content)

    async with fake.running(client):
        assert client.user is not None and client.user.id == fake.bot_user.id
        assert client.application_id == fake.application_id
        assert client.latency < 1.0  # the fake acknowledged the first heartbeat (op 1 → op 11)
        seen = client.get_guild(guild.id)
        assert seen is not None and seen.name == "Test Guild"
        assert [c.name for c in seen.text_channels] == ["general", "bot-log"]
        assert [(c.name, c.bitrate) for c in seen.voice_channels] == [("Voice", 64_000)]
        assert {m.name for m in seen.members} == {"Echo", "app-owner", "alice", "bob"}
        assert seen.get_member(alice.id).guild_permissions.manage_guild
        assert not seen.get_member(bob.id).guild_permissions.manage_guild
        assert [r.name for r in seen.get_member(bob.id).roles if not r.is_default()] == ["listeners"]
        assert seen.me.guild_permissions.speak and not seen.me.guild_permissions.administrator

        synced = await tree.sync()
        tree.copy_global_to(guild=seen)
        synced_here = await tree.sync(guild=seen)

        recorded = {c["name"]: c for c in fake.commands()}
        assert {name: c["type"] for name, c in recorded.items()} == {"ping": 1, "voice": 1, "Speak this": 3}
        assert recorded["voice"]["options"][0]["name"] == "list"
        assert {c.name: c.id for c in synced} == {name: int(c["id"]) for name, c in recorded.items()}
        here = {c["name"]: c for c in fake.commands(guild)}
        assert {c.name: c.id for c in synced_here} == {name: int(c["id"]) for name, c in here.items()}
        assert [s.guild_id for s in fake.command_syncs] == [None, guild.id]

        pong = await fake.invoke("ping", user=alice)
        reply = await pong.wait_for_callback()
        assert reply.callback_type == CallbackType.CHANNEL_MESSAGE
        assert (reply.content, reply.ephemeral) == ("pong", True)
        assert pong.payload["data"]["id"] == here["ping"]["id"]  # the guild copy wins, as on Discord

        listing = await fake.invoke("voice list", user=bob)
        assert (await listing.wait_for_callback()).content == "no voices yet, Bob"
        assert not fake.unhandled_requests


async def test_slash_command_options_arrive_typed_and_resolved(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    bob = fake.add_member(guild, "bob", permissions=Perm.ATTACH_FILES)
    mods = fake.add_role(guild, "mods", Perm.MANAGE_MESSAGES)
    client, tree = make_client(fake)

    @tree.command()
    async def echo(
        interaction: discord.Interaction,
        text: str,
        count: int,
        loud: bool,
        speed: float,
        who: discord.Member,
        where: discord.abc.GuildChannel,
        role: discord.Role,
    ) -> None:
        """Echo every option back."""
        await interaction.response.send_message(
            f"{text}|{count * 2}|{not loud}|{speed + 0.5}|{who.name}:{who.guild_permissions.attach_files}"
            f"|{where.name}|{role.name}:{role.permissions.manage_messages}"
        )

    async with fake.running(client):
        await tree.sync()
        voice_channel = guild.voice_channels[0]
        record = await fake.invoke(
            "echo",
            {
                "text": "hi",
                "count": 21,
                "loud": False,
                "speed": 1.0,
                "who": bob,
                "where": voice_channel,
                "role": mods,
            },
            user=alice,
        )
        reply = await record.wait_for_callback()
        assert reply.content == "hi|42|True|1.5|bob:True|Voice|mods:True"
        assert not reply.ephemeral
        with pytest.raises(ValueError, match="required option 'role'"):
            await fake.invoke(
                "echo",
                {"text": "x", "count": 1, "loud": True, "speed": 1.0, "who": bob, "where": voice_channel},
                user=alice,
            )


async def test_attachment_is_downloaded_and_followup_file_arrives_intact(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice", permissions=Perm.ATTACH_FILES)
    client, tree = make_client(fake)
    reference = bytes(range(256)) * 400  # 100 KiB that are easy to tell apart

    @tree.command()
    async def clone(interaction: discord.Interaction, name: str, reference: discord.Attachment) -> None:
        """Clone a voice from a recording."""
        await interaction.response.defer(thinking=True)
        data = await reference.read()
        await interaction.edit_original_response(content=f"Cloning {name} from {len(data)} bytes")
        preview = discord.File(io.BytesIO(data[::-1]), filename="preview.ogg")
        await interaction.followup.send(f"Voice {name} is ready", file=preview)

    async with fake.running(client):
        await tree.sync()
        upload = fake.attachment("reference.ogg", reference, content_type="audio/ogg")
        record = await fake.invoke("clone", {"name": "bob"}, user=alice, attachments=[upload])
        callback, edit, followup = await record.wait_for(3)

        assert callback.kind == "callback" and callback.callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE
        assert record.ack_delay is not None and record.ack_delay < 3
        assert edit.kind == "edit" and edit.content == f"Cloning bob from {len(reference)} bytes"
        assert edit.message_id == record.original_message_id and not edit.flags & MessageFlag.LOADING
        assert followup.kind == "followup" and followup.content == "Voice bob is ready"
        assert followup.message_id != record.original_message_id
        [sent] = followup.files
        assert (sent.filename, sent.content_type, sent.data) == ("preview.ogg", "audio/ogg", reference[::-1])
        [attachment] = followup.attachments
        assert attachment["size"] == len(reference) and attachment["content_type"] == "audio/ogg"
        async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as response:
            assert await response.read() == reference[::-1]


async def test_first_followup_after_thinking_defer_becomes_the_ephemeral_original(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)

    @tree.command()
    async def voices(interaction: discord.Interaction) -> None:
        """List voices privately."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        first = await interaction.followup.send("no voices yet", wait=True)
        second = await interaction.followup.send("really none", wait=True)
        listing = discord.File(io.BytesIO(b"name,owner\n"), filename="voices.csv")
        await first.edit(content=f"no voices yet ({second.id != first.id})", attachments=[listing])

    async with fake.running(client):
        await tree.sync()
        record = await fake.invoke("voices", user=alice)
        callback, first, second, edit = await record.wait_for(4)
        assert callback.callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE and callback.ephemeral
        assert first.message_id == record.original_message_id and first.ephemeral
        assert second.message_id != record.original_message_id and not second.ephemeral
        assert edit.kind == "edit" and edit.content == "no voices yet (True)"
        assert [(f.filename, f.data) for f in edit.files] == [("voices.csv", b"name,owner\n")]
        assert [a["filename"] for a in record.original.attachments] == ["voices.csv"]


async def test_voice_playback_is_decoded_by_the_fake_and_matches_the_signal(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    fake.voice.heartbeat_interval_ms = 250.0  # so a 2 s test sees voice heartbeats
    guild = fake.add_guild()
    client, _ = make_client(fake)
    reference = chirp(2.0, 440.0, 660.0)
    packets = encode_opus(reference)

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        voice = await channel.connect()
        assert fake.bot_voice_channel(guild).id == channel.id
        session = fake.voice_sessions(guild)[0]
        started = asyncio.get_running_loop().time()
        finished, errors = play_until_done(voice, packets)
        await asyncio.wait_for(finished.wait(), 10)
        # discord.py follows the last packet with five frames of Opus silence.
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= len(packets) + 5, timeout=2)
        await voice.disconnect()
        assert fake.bot_voice_channel(guild) is None

    assert errors == [None]
    received = fake.voice_packets(guild)
    assert len(received) == len(packets) + 5
    assert 0 <= received[0].arrival - started < 0.5
    first_sequence = received[0].sequence
    assert [p.sequence for p in received] == list(range(first_sequence, first_sequence + len(received)))
    assert all(b.timestamp - a.timestamp == 960 for a, b in itertools.pairwise(received))
    pcm = fake.voice_pcm(guild)
    assert pcm.shape == (960 * len(received), 2)
    lag, correlation = align(reference, pcm)
    assert correlation >= 0.95
    assert 0 <= lag < 960  # the Opus encoder's look-ahead, nothing more
    assert session.mode == "aead_xchacha20_poly1305_rtpsize" and session.decrypt_failures == 0
    assert session.identify["max_dave_protocol_version"] >= 1  # davey is installed: DAVE is negotiated
    assert session.dave is not None and session.dave_failures == 0  # the listener member decrypted it all
    speaking = [s["speaking"] for s in session.speaking]
    assert speaking[:2] == [0, 1] and speaking[-1] == 0  # "not speaking" on connect, then talk, then stop
    assert session.discovered_address == session.selected_address
    assert len(session.seq_acks) >= 4 and session.seq_acks[-1] == session.server_seq  # v8 seq_ack


async def test_dropped_gateway_is_resumed_and_missed_events_are_replayed(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)
    resumed = asyncio.Event()

    @client.event
    async def on_resumed() -> None:
        resumed.set()

    @tree.command()
    async def ping(interaction: discord.Interaction) -> None:
        """Check that the bot answers."""
        await interaction.response.send_message("pong")

    async with fake.running(client):
        await tree.sync()
        [session] = fake.gateway_sessions
        await fake.drop_gateway(code=4000)
        missed = await fake.invoke("ping", user=alice)  # dispatched while the bot is away
        await asyncio.wait_for(resumed.wait(), 5)
        assert (await missed.wait_for_callback()).content == "pong"
        after = await fake.invoke("ping", user=alice)
        assert (await after.wait_for_callback()).content == "pong"

        identifies = [f for f in fake.gateway.received if f["op"] == 2]
        [resume] = [f for f in fake.gateway.received if f["op"] == 6]
        missed_seq = next(f["s"] for f in session.backlog if f["d"] is missed.payload)
        assert len(identifies) == 1 and fake.gateway_sessions == [session] and session.resumes == 1
        assert resume["d"]["session_id"] == session.session_id and resume["d"]["seq"] < missed_seq
        assert 4000 in fake.gateway.close_codes
        assert [c.path for c in fake.gateway.connections] == ["/gateway-resume"]


async def test_rate_limited_followup_is_retried_after_retry_after(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)

    @tree.command()
    async def say(interaction: discord.Interaction, text: str) -> None:
        """Say something later."""
        await interaction.response.defer()
        await interaction.edit_original_response(content="working")
        await interaction.followup.send(f"said {text}")

    async with fake.running(client):
        await tree.sync()
        fault = fake.arm_fault("POST /webhooks/*", "429", retry_after=0.3)
        slow = fake.arm_fault("PATCH /webhooks/*/messages/@original", "slow", delay=0.2)
        record = await fake.invoke("say", {"text": "hi"}, user=alice)
        followup = await record.wait_for(lambda r: r.kind == "followup", timeout=5)

    callback, edit, _ = record.replies
    assert edit.content == "working" and edit.at - callback.at >= 0.2 and len(slow.hits) == 1
    assert followup.content == "said hi"
    assert len(fault.hits) == 1 and fault.remaining == 0
    posts = [r for r in fake.requests if r.method == "POST" and r.path.startswith("/webhooks/")]
    assert [(r.status, r.fault) for r in posts] == [(429, "429"), (200, None)]
    assert posts[1].at - posts[0].at >= 0.3


async def test_server_errors_are_retried_and_oversized_uploads_rejected(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild(upload_limit=64 * 1024)
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)
    errors: list[int] = []

    @tree.command()
    async def render(interaction: discord.Interaction) -> None:
        """Render a long file."""
        await interaction.response.defer(thinking=True)
        assert interaction.filesize_limit == 64 * 1024
        try:
            await interaction.followup.send(file=discord.File(io.BytesIO(bytes(100_000)), "long.ogg"))
        except discord.HTTPException as error:
            errors.append(error.code)
            await interaction.edit_original_response(content="That file is too large for this server.")

    async with fake.running(client):
        await tree.sync()
        fault = fake.arm_fault("POST /interactions/*/callback", "500")
        record = await fake.invoke("render", user=alice)
        edit = await record.wait_for(lambda r: r.kind == "edit", timeout=5)

    assert len(fault.hits) == 1
    assert record.callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE and record.ack_delay < 3
    assert errors == [40005]
    assert edit.content == "That file is too large for this server." and record.followups == []


async def test_channel_messages_and_a_raw_http_voice_message(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)
    seen: list[discord.Message] = []
    ogg = b"OggS" + bytes(range(256)) * 8
    waveform = base64.b64encode(bytes(range(0, 256, 4))).decode()

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    async def send_voice_message(channel_id: int, payload: dict) -> dict:
        # discord.py 2.7 has no API for voice messages: post the multipart body by hand.
        route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
        form = [
            {"name": "payload_json", "value": json.dumps(payload)},
            {"name": "files[0]", "value": ogg, "filename": "voice-message.ogg", "content_type": "audio/ogg"},
        ]
        return await client.http.request(route, form=form, files=[])

    @tree.command()
    async def post(interaction: discord.Interaction) -> None:
        """Post the result in the channel."""
        await interaction.response.defer(ephemeral=True)
        status = await interaction.channel.send("Rendering…")
        await status.edit(content="Rendered", attachments=[discord.File(io.BytesIO(b"abc"), "take.ogg")])
        attachment = {"id": 0, "filename": "voice-message.ogg", "duration_secs": 2.5, "waveform": waveform}
        try:
            await send_voice_message(
                interaction.channel_id, {"content": "hi", "flags": 8192, "attachments": [attachment]}
            )
        except discord.HTTPException as error:
            await interaction.edit_original_response(content=f"refused {error.code}")
        await send_voice_message(interaction.channel_id, {"flags": 8192, "attachments": [attachment]})

    async with fake.running(client):
        await tree.sync()
        general = guild.text_channels[0]
        record = await fake.invoke("post", user=alice)
        voice_note = await fake.wait_for_message(lambda r: r.is_voice_message)
        refused = await record.wait_for(lambda r: r.kind == "edit")
        await fake.wait_until(lambda: len(seen) >= 2)

    created, edited, _ = fake.channel_messages(general)
    assert (created.kind, created.content) == ("message", "Rendering…")
    assert (edited.kind, edited.content) == ("message_edit", "Rendered")
    assert [(f.filename, f.data) for f in edited.files] == [("take.ogg", b"abc")]
    assert refused.content == "refused 50159"  # voice messages cannot carry text
    [attachment] = voice_note.attachments
    assert (attachment["duration_secs"], attachment["waveform"]) == (2.5, waveform)
    assert voice_note.files[0].data == ogg and voice_note.files[0].content_type == "audio/ogg"
    # MESSAGE_CREATE reached on_message; MESSAGE_UPDATE then updated the cached message in place.
    assert [m.id for m in seen] == [created.message_id, voice_note.message_id]
    assert [m.content for m in seen] == ["Rendered", ""] and seen[1].flags.voice


async def test_autocomplete_context_menus_buttons_and_modals(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice", roles=["speakers", "mods"])
    bob = fake.add_member(guild, "bob")
    client, tree = make_client(fake)

    class Rename(discord.ui.Modal, title="Rename voice"):
        new_name: discord.ui.TextInput = discord.ui.TextInput(label="New name", custom_id="new_name")

        def __init__(self) -> None:
            super().__init__(custom_id="rename")

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"renamed to {self.new_name.value}", ephemeral=True)

    class VoiceCard(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)  # a timeout task would outlive client.close()

        @discord.ui.button(label="Rename", custom_id="rename-button")
        async def rename(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            await interaction.response.send_modal(Rename())

    @tree.command()
    async def say(interaction: discord.Interaction, voice: str, text: str) -> None:
        """Speak with a cloned voice."""
        await interaction.response.send_message(f"{voice}: {text}", view=VoiceCard())

    @say.autocomplete("voice")
    async def voice_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = [v for v in ("albert", "alice", "bob") if v.startswith(current)]
        return [app_commands.Choice(name=v, value=v) for v in names]

    @tree.context_menu(name="Voice card")
    async def voice_card(interaction: discord.Interaction, member: discord.Member) -> None:
        roles = len(member.roles) - 1  # without @everyone
        await interaction.response.send_message(f"{member.name}: {roles} roles", ephemeral=True)

    @tree.context_menu(name="Speak this")
    async def speak_this(interaction: discord.Interaction, message: discord.Message) -> None:
        attachment = message.attachments[0]
        data = await attachment.read()
        await interaction.response.send_message(
            f"{message.flags.voice} {attachment.is_voice_message()} {attachment.duration} "
            f"{len(attachment.waveform or b'')} {attachment.content_type} {data == ogg}"
        )

    ogg = b"OggS" + bytes(2_000)
    async with fake.running(client):
        await tree.sync()
        typing = await fake.autocomplete("say", {"voice": "al"}, focused="voice", user=alice)
        choices = await typing.wait_for_choices()
        assert choices == [{"name": "albert", "value": "albert"}, {"name": "alice", "value": "alice"}]

        card = await fake.invoke_user_command("Voice card", target=alice, user=bob)
        assert (await card.wait_for_callback()).content == "alice: 2 roles"

        general = guild.text_channels[0]
        note = fake.voice_message(general, bob, ogg, duration_secs=1.5, waveform=bytes(range(64)))
        spoken = await fake.invoke_message_command("Speak this", message=note, user=alice)
        assert (await spoken.wait_for_callback()).content == "True True 1.5 64 audio/ogg True"

        said = await fake.invoke("say", {"voice": "alice", "text": "hello"}, user=alice)
        await said.wait_for_callback()
        pressed = await fake.click(said, "rename-button", user=alice)
        opened = await pressed.wait_for_callback()
        assert opened.callback_type == CallbackType.MODAL and opened.modal["title"] == "Rename voice"
        submitted = await fake.submit_modal("rename", {"new_name": "Alicia"}, user=alice)
        reply = await submitted.wait_for_callback()
        assert reply.content == "renamed to Alicia" and reply.ephemeral


async def test_voice_websocket_dropped_mid_playback_reconnects_and_playback_continues(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    bob = fake.add_member(guild, "bob")
    client, _ = make_client(fake)
    reference = chirp(3.0, 440.0, 660.0)
    packets = encode_opus(reference)

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        voice = await channel.connect()
        await fake.member_join_voice(bob, guild.voice_channels[0])
        finished, errors = play_until_done(voice, packets)
        # Bob says something: like on Discord, his audio reaches the bot's UDP socket.
        await fake.member_speak(bob, encode_opus(chirp(0.1)))
        await asyncio.sleep(0.5)
        dropped = await fake.drop_voice(guild)  # TCP abort: discord.py sees close code 1006
        await asyncio.wait_for(finished.wait(), 15)
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= len(packets) + 5, timeout=2)
        assert voice.is_connected()
        await voice.disconnect()

    first, second = fake.voice_sessions(guild)
    assert first is dropped and first.close_codes == [1006]
    assert second.resumes == 0 and second.ssrc != first.ssrc and second.secret_key != first.secret_key
    voice_ops = [f["d"]["channel_id"] for f in fake.gateway.received if f["op"] == 4]
    assert voice_ops == [channel.id, None, channel.id, None]  # join, leave + rejoin after the drop, leave
    assert errors == [None]
    assert first.packets and second.packets
    assert len(first.packets) + len(second.packets) == len(packets) + 5  # nothing was lost
    lag, correlation = align(reference, fake.voice_pcm(guild))
    assert correlation >= 0.95 and 0 <= lag < 960


def test_rtpsize_packets_round_trip_with_a_header_extension() -> None:
    key = bytes(range(32))
    opus = encode_opus(chirp(0.02))[0]
    plain = build_rtp(7, 960 * 7, 1234, opus, key, nonce=41)
    extended = build_rtp(8, 960 * 8, 1234, opus, key, nonce=42, audio_level=30)
    assert parse_rtp(plain, key) == (7, 6720, 1234, opus)
    assert parse_rtp(extended, key) == (8, 7680, 1234, opus)
    assert extended[0] == 0x90 and extended[12:16] == b"\xbe\xde\x00\x01"
    tampered = bytearray(extended)
    tampered[13] ^= 1  # the extension header is authenticated
    with pytest.raises(nacl.exceptions.CryptoError):
        parse_rtp(bytes(tampered), key)


async def test_fake_restores_discord_py_and_frees_its_ports() -> None:
    saved_base = discord.http.Route.BASE
    saved_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord() as fake:
        assert discord.http.Route.BASE == fake.api_base
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
        ports = [int(fake.http_base.rsplit(":", 1)[1]), int(fake.voice.endpoint.rsplit(":", 1)[1])]
    assert discord.http.Route.BASE == saved_base
    assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == saved_gateway
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
