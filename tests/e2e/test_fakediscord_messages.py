"""Self-tests of the fake's messages, each through a real discord.py 2.7 ``Client``: MESSAGE_CREATE,
MESSAGE_UPDATE and MESSAGE_DELETE as Discord delivers them, gated by intents (GUILD_MESSAGES,
DIRECT_MESSAGES, the privileged MESSAGE_CONTENT and its 4014 refusal), in text channels, voice
channels' text chats and DMs, from members, other bots and webhooks, "@silent" or not — and the
REST reads (one message, history) a bot may do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands

from tests.fakediscord import DEFAULT_BOT_PERMISSIONS, ApplicationFlag, FakeDiscord, Intent, Perm
from tests.fakediscord.leftovers import DISCORD_THREADS, assert_nothing_left_behind

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EMBED = {"type": "rich", "title": "Patch notes", "description": "Version 2"}


@pytest.fixture(autouse=True)
async def leaves_nothing_behind() -> AsyncIterator[None]:
    yield
    await assert_nothing_left_behind(DISCORD_THREADS)


def make_client(fake: FakeDiscord, **intents: bool) -> tuple[discord.Client, list[discord.Message]]:
    """A plain client with ``Intents.default()`` changed by ``intents``; its ``on_message`` list."""
    chosen = discord.Intents.default()
    for name, value in intents.items():
        setattr(chosen, name, value)
    client = discord.Client(intents=chosen, connector=fake.connector(), guild_ready_timeout=0.1)
    seen: list[discord.Message] = []

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    return client, seen


async def arrived(fake: FakeDiscord, seen: list[discord.Message], count: int) -> list[discord.Message]:
    await fake.wait_until(lambda: len(seen) >= count, timeout=10, describe=lambda: f"{seen}")
    return seen


async def test_without_the_intent_content_is_empty_unless_mentioned_own_or_a_dm(fake_discord: FakeDiscord):
    fake = fake_discord
    guild = fake.add_guild()
    general = guild.text_channels[0]
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake)

    async with fake.running(client):
        plain = fake.add_message(
            general, alice, "read me", attachments=[("a.txt", b"hi")], embeds=[EMBED], poll=("Tea?", ["Yes"])
        )
        mention = fake.add_message(general, alice, f"<@{fake.bot_user.id}> read me too")
        dm = fake.add_dm_message(alice, "a secret")
        own = await client.get_channel(general.id).send("the bot speaks")
        await arrived(fake, seen, 4)
        fetched = await client.get_channel(general.id).fetch_message(plain.id)
        history = [m async for m in client.get_channel(general.id).history(limit=10)]

    by_id = {m.id: m for m in seen}
    hidden = by_id[plain.id]
    assert (hidden.content, hidden.embeds, hidden.attachments, hidden.poll) == ("", [], [], None)
    assert by_id[mention.id].content == f"<@{fake.bot_user.id}> read me too"
    assert by_id[mention.id].mentions == [client.user]
    assert isinstance(by_id[dm.id].channel, discord.DMChannel) and by_id[dm.id].content == "a secret"
    assert by_id[own.id].content == "the bot speaks"
    # REST obeys the Developer Portal setting, off here: the same rules as the gateway.
    assert (fetched.content, fetched.attachments) == ("", [])
    assert [(m.id, m.content) for m in history] == [
        (own.id, "the bot speaks"),
        (mention.id, mention.content),
        (plain.id, ""),
    ]


async def test_with_the_intent_enabled_and_asked_for_everything_arrives(fake_discord: FakeDiscord):
    fake = fake_discord
    fake.privileged_intents |= Intent.MESSAGE_CONTENT
    guild = fake.add_guild()
    general = guild.text_channels[0]
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake, message_content=True)

    async with fake.running(client):
        posted = fake.add_message(
            general, alice, "read me", attachments=[("a.txt", b"hi")], embeds=[EMBED], poll=("Tea?", ["Yes"])
        )
        [message] = await arrived(fake, seen, 1)
        info = await client.application_info()
        fetched = await message.channel.fetch_message(posted.id)

    assert message.content == "read me" and [e.title for e in message.embeds] == ["Patch notes"]
    assert [a.filename for a in message.attachments] == ["a.txt"] and message.poll.question == "Tea?"
    assert isinstance(message.author, discord.Member) and message.author.id == alice.id
    assert (fetched.content, [a.filename for a in fetched.attachments]) == ("read me", ["a.txt"])
    assert client.application_flags.gateway_message_content_limited
    assert info.flags.gateway_message_content_limited and info.flags.gateway_guild_members_limited
    assert not info.flags.gateway_presence_limited


async def test_the_bots_own_interaction_replies_arrive_with_content_ephemeral_ones_never(
    fake_discord: FakeDiscord,
):
    fake = fake_discord
    guild = fake.add_guild()
    voice = guild.voice_channels[0]
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake)
    tree = app_commands.CommandTree(client)

    @tree.command()
    async def say(interaction: discord.Interaction, text: str, private: bool) -> None:
        """Say something in this channel."""
        await interaction.response.send_message(text, ephemeral=private)

    async with fake.running(client):
        await tree.sync()
        await (
            await fake.invoke("say", {"text": "secret", "private": True}, user=alice, channel=voice)
        ).wait_for_callback()
        spoken = await fake.invoke("say", {"text": "out loud", "private": False}, user=alice, channel=voice)
        await spoken.wait_for_callback()
        [message] = await arrived(fake, seen, 1)

    assert (message.id, message.content, message.author.id) == (
        spoken.original_message_id,
        "out loud",
        client.user.id,
    )
    assert (
        isinstance(message.channel, discord.VoiceChannel) and message.interaction_metadata.user.id == alice.id
    )


async def test_the_portal_setting_alone_gives_content_over_rest_not_the_gateway(fake_discord: FakeDiscord):
    fake = fake_discord
    fake.privileged_intents = Intent.MESSAGE_CONTENT
    guild = fake.add_guild()
    general = guild.text_channels[0]
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake)  # does not ask for message_content

    async with fake.running(client):
        posted = fake.add_message(general, alice, "read me")
        [message] = await arrived(fake, seen, 1)
        fetched = await message.channel.fetch_message(posted.id)

    # events/gateway.mdx: HTTP restrictions "are unaffected by which intents your app passes".
    assert (message.content, fetched.content) == ("", "read me")


async def test_asking_for_a_privileged_intent_not_enabled_is_closed_with_4014(fake_discord: FakeDiscord):
    fake = fake_discord
    fake.privileged_intents = 0
    fake.add_guild()
    for asked in ({"message_content": True}, {"members": True}):
        client, _ = make_client(fake, **asked)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with fake.running(client):
                pass
    assert fake.gateway.close_codes == [4014, 4014] and not fake.gateway_sessions

    fake.privileged_intents |= Intent.MESSAGE_CONTENT  # switched on in the Developer Portal
    client, _ = make_client(fake, message_content=True)
    async with fake.running(client):
        assert fake.gateway_sessions[0].intents & Intent.MESSAGE_CONTENT
        info = await client.application_info()
    assert info.flags.value == ApplicationFlag.GATEWAY_MESSAGE_CONTENT_LIMITED


async def test_a_voice_channel_chat_message_belongs_to_the_voice_channel(fake_discord: FakeDiscord):
    fake = fake_discord
    guild = fake.add_guild()
    voice = guild.voice_channels[0]
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake, message_content=True)
    fake.privileged_intents |= Intent.MESSAGE_CONTENT

    async with fake.running(client):
        posted = fake.add_message(voice, alice, "read this in voice")
        [message] = await arrived(fake, seen, 1)
        await message.channel.send("heard you")
        fetched = await client.get_channel(voice.id).fetch_message(posted.id)

    assert isinstance(message.channel, discord.VoiceChannel) and message.channel.id == voice.id
    assert message.guild.id == guild.id and message.content == "read this in voice"
    assert fetched.content == "read this in voice" and isinstance(fetched.channel, discord.VoiceChannel)
    assert [r.content for r in fake.channel_messages(voice)] == ["heard you"]


async def test_silent_webhook_and_bot_authors_are_visible(fake_discord: FakeDiscord):
    fake = fake_discord
    guild = fake.add_guild()
    general = guild.text_channels[0]
    alice = fake.add_member(guild, "alice")
    other_bot = fake.add_member(guild, "music-bot", bot=True)
    hook = fake.add_webhook(general, "GitHub")
    client, seen = make_client(fake)

    async with fake.running(client):
        silent = fake.add_message(general, alice, "shh", silent=True)
        loud = fake.add_message(general, alice, "hey")
        from_hook = fake.add_message(general, hook, "build passed")
        from_bot = fake.add_message(general, other_bot, "now playing")
        await arrived(fake, seen, 4)

    by_id = {m.id: m for m in seen}
    assert by_id[silent.id].flags.suppress_notifications and not by_id[loud.id].flags.suppress_notifications
    hooked = by_id[from_hook.id]
    assert hooked.webhook_id == hook.id and hooked.author.id == hook.id and hooked.author.bot
    assert hooked.author.name == "GitHub" and not isinstance(hooked.author, discord.Member)
    assert by_id[from_bot.id].author.bot and isinstance(by_id[from_bot.id].author, discord.Member)
    assert by_id[from_bot.id].webhook_id is None and not by_id[loud.id].author.bot


async def test_edits_and_deletes_fire_with_the_right_ids(fake_discord: FakeDiscord):
    fake = fake_discord
    fake.privileged_intents |= Intent.MESSAGE_CONTENT
    guild = fake.add_guild()
    voice = guild.voice_channels[0]
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake, message_content=True)
    edits: list[tuple[str, str]] = []
    raw_edits: list[discord.RawMessageUpdateEvent] = []
    raw_deletes: list[discord.RawMessageDeleteEvent] = []
    deleted: list[discord.Message] = []

    @client.event
    async def on_message_edit(before: discord.Message, after: discord.Message) -> None:
        edits.append((before.content, after.content))

    @client.event
    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        raw_edits.append(payload)

    @client.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        raw_deletes.append(payload)

    @client.event
    async def on_message_delete(message: discord.Message) -> None:
        deleted.append(message)

    async with fake.running(client):
        posted = fake.add_message(voice, alice, "first words")
        await arrived(fake, seen, 1)
        fake.edit_message(posted, f"second words, <@{fake.bot_user.id}>")
        await fake.wait_until(lambda: edits and raw_edits)
        fake.delete_message(posted)
        await fake.wait_until(lambda: raw_deletes and deleted)
        with pytest.raises(discord.NotFound) as gone:
            await client.get_channel(voice.id).fetch_message(posted.id)

    assert edits == [("first words", f"second words, <@{fake.bot_user.id}>")]
    [raw_edit] = raw_edits
    assert (raw_edit.message_id, raw_edit.channel_id, raw_edit.guild_id) == (posted.id, voice.id, guild.id)
    assert raw_edit.message.edited_at is not None and raw_edit.message.mentions == [client.user]
    [raw_delete] = raw_deletes
    assert (raw_delete.message_id, raw_delete.channel_id, raw_delete.guild_id) == (
        posted.id,
        voice.id,
        guild.id,
    )
    assert [m.id for m in deleted] == [posted.id] and gone.value.code == 10008


async def test_message_events_need_guild_messages_and_dms_need_direct_messages(fake_discord: FakeDiscord):
    fake = fake_discord
    guild = fake.add_guild()
    general, voice = guild.text_channels[0], guild.voice_channels[0]
    alice = fake.add_member(guild, "alice")
    deaf, deaf_seen = make_client(fake, guild_messages=False, dm_messages=False)
    states: list[int] = []

    @deaf.event
    async def on_voice_state_update(member: discord.Member, before: object, after: object) -> None:
        states.append(member.id)

    async with fake.running(deaf):
        posted = fake.add_message(general, alice, "hello?")
        fake.edit_message(posted, "anyone?")
        fake.delete_message(posted)
        fake.add_dm_message(alice, "psst")
        await fake.member_join_voice(alice, voice)  # a later event: everything before it has arrived
        await fake.wait_until(lambda: states == [alice.id])
        sent = [frame["t"] for frame in fake.gateway_sessions[0].backlog]

    assert deaf_seen == [] and not any(t.startswith("MESSAGE_") for t in sent)

    guild_only, guild_seen = make_client(fake, dm_messages=False)
    async with fake.running(guild_only):
        fake.add_dm_message(alice, "psst again")
        in_guild = fake.add_message(general, alice, "hello")
        await arrived(fake, guild_seen, 1)
    assert [m.id for m in guild_seen] == [in_guild.id]


async def test_a_channel_hidden_from_the_bot_sends_it_nothing(fake_discord: FakeDiscord):
    fake = fake_discord
    guild = fake.add_guild(text_channels=("general", "staff"))
    general, staff = guild.text_channels
    alice = fake.add_member(guild, "alice")
    fake.set_channel_permissions(staff, guild.members[fake.bot_user.id], deny=Perm.VIEW_CHANNEL)
    client, seen = make_client(fake)

    async with fake.running(client):
        fake.add_message(staff, alice, "the bot must not see this")
        visible = fake.add_message(general, alice, "this one it sees")
        await arrived(fake, seen, 1)

    assert [m.id for m in seen] == [visible.id]


async def test_dms_arrive_with_content_and_the_bot_can_answer(fake_discord: FakeDiscord):
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, seen = make_client(fake)

    async with fake.running(client):
        posted = fake.add_dm_message(alice, "can you read this?")
        [message] = await arrived(fake, seen, 1)
        await message.channel.send("yes")
        user = await client.fetch_user(alice.id)  # not cached: no members intent
        await user.send("and again")
        history = [m.content async for m in message.channel.history(limit=5)]

    dm = fake.dm_channel(alice)
    assert message.guild is None and isinstance(message.channel, discord.DMChannel)
    assert message.channel.id == dm.id == posted.channel_id and message.content == "can you read this?"
    assert [r.content for r in fake.channel_messages(dm)] == ["yes", "and again"]
    assert history == ["and again", "yes", "can you read this?"]
    assert [r.status for r in fake.requests if r.path == "/users/@me/channels"] == [200]


async def test_history_pages_newest_first_and_deleting_others_needs_manage_messages(
    fake_discord: FakeDiscord,
):
    fake = fake_discord
    fake.privileged_intents |= Intent.MESSAGE_CONTENT
    guild = fake.add_guild()
    general = guild.text_channels[0]
    alice = fake.add_member(guild, "alice")
    moderated = fake.add_guild("Moderated", bot_permissions=DEFAULT_BOT_PERMISSIONS | Perm.MANAGE_MESSAGES)
    bob = fake.add_member(moderated, "bob")
    client, _ = make_client(fake)
    raw_deletes: list[int] = []

    @client.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        raw_deletes.append(payload.message_id)

    async with fake.running(client):
        posted = [fake.add_message(general, alice, f"m{i}") for i in range(5)]
        channel = client.get_channel(general.id)
        newest = [m.content async for m in channel.history(limit=2)]
        after = [m.content async for m in channel.history(after=discord.Object(posted[1].id))]
        before = [m.content async for m in channel.history(before=discord.Object(posted[3].id), limit=2)]
        around = [m.content async for m in channel.history(around=discord.Object(posted[2].id), limit=3)]
        with pytest.raises(discord.Forbidden) as refused:
            await (await channel.fetch_message(posted[0].id)).delete()
        spam = fake.add_message(moderated.text_channels[0], bob, "spam")
        await (await client.get_channel(spam.channel_id).fetch_message(spam.id)).delete()
        await fake.wait_until(lambda: raw_deletes == [spam.id])

    assert newest == ["m4", "m3"]
    assert after == ["m2", "m3", "m4"]  # discord.py gives ``after`` oldest first
    assert before == ["m2", "m1"] and around == ["m3", "m2", "m1"]
    assert refused.value.code == 50013 and not posted[0].deleted and spam.deleted
