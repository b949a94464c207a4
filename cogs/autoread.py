"""Auto-read: members who opt in are read aloud in their own cloned voice, without a command.

/autoread channel add|remove|list and /autoread settings (Manage Server) choose what is read; a member
opts in with /autoread me. A message is read when its author opted in, is in the bot's voice channel (or
the bot is free to join theirs), posted in an auto-read channel (or the voice channel's own text chat),
and every listener in that voice channel can see where it was posted. Messages go through the same
per-server queue as /say, in the order they were sent; an edit or delete before a message is spoken
takes it out, and beyond a server's queue limit the oldest waiting ones are dropped (and counted).
Auto-read counts against the member's cooldown and the server's daily quota like /say; a message that
would break them is skipped, not answered (nobody asked for a reply).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot import autoread, delivery, mentions, speech
from bot.errors import InvalidInput, NoDefaultVoice, VoiceBotError, VoiceNotFound
from bot.playback import Outcome, QueueItem
from bot.store import AutoReadSettings, GuildSettings, Voice, VoiceLibrary
from cogs.common import answer, bot_of, defer_private, guild_id_of, voice_names

if TYPE_CHECKING:
    from bot.client import VoiceBot

log = logging.getLogger(__name__)

READABLE_TYPES = (discord.MessageType.default, discord.MessageType.reply)


class MessageContentOff(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "Auto-read needs Discord's Message Content intent, which is off for this bot. A bot admin "
            "must enable it (Developer Portal → the bot's application → Bot → Privileged Gateway Intents "
            "→ Message Content Intent) and restart the bot."
        )


@dataclass(frozen=True)
class Snapshot:
    """One read of a server's auto-read state from the library."""

    settings: AutoReadSettings
    guild_settings: GuildSettings  # /settings: cooldown and quota
    channels: set[int]
    members: set[int]
    ignored_roles: frozenset[int]
    voice: Voice | None  # the author's voice: their default, else the server's fallback


class Waiting:
    """Auto-read messages queued in one server and not yet spoken, oldest first."""

    def __init__(self) -> None:
        self.items: collections.OrderedDict[int, QueueItem] = collections.OrderedDict()
        # Messages edited or deleted while still being taken in (before they had a queue item): the
        # intake drops them once it gets that far.
        self.withdrawn: collections.deque[int] = collections.deque(maxlen=256)
        self.dropped = 0
        self.last_speaker: int | None = None


def own_default_voice(store: VoiceLibrary, guild_id: int, user_id: int) -> Voice | None:
    """The member's default voice if it is their own (they own it, or it was cloned from them):
    auto-read promises to read a member in their own voice, never as someone else."""
    voice = store.default_voice(guild_id, user_id)
    return voice if voice is not None and voice.is_own_voice_of(user_id) else None


def snapshot(store: VoiceLibrary, guild_id: int, author_id: int) -> Snapshot:
    """In a thread: everything auto-read needs from the library for one message."""
    settings = store.autoread_settings(guild_id)
    voice = own_default_voice(store, guild_id, author_id)
    if voice is None and settings.fallback_voice_id:
        try:
            voice = store.get_by_id(guild_id, settings.fallback_voice_id)
        except VoiceNotFound:
            voice = None
    return Snapshot(
        settings,
        store.settings(guild_id),
        store.autoread_channels(guild_id),
        store.autoread_members(guild_id),
        store.autoread_ignored_roles(guild_id),
        voice,
    )


@app_commands.guild_only()
class AutoRead(
    commands.GroupCog, name="autoread", description="Read members' messages aloud in their voice."
):
    channel = app_commands.Group(name="channel", description="Which text channels are read aloud.")

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self._intake: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, Waiting] = {}

    def _needs_message_content(self) -> None:
        """Every /autoread command first: without the intent, say exactly what to enable."""
        if not self.bot.intents.message_content:
            raise MessageContentOff()

    # --- commands -------------------------------------------------------------------------------

    @channel.command(name="add", description="Read messages posted in this channel aloud.")
    @app_commands.describe(channel="A text channel, or a voice channel's text chat")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def channel_add(
        self, interaction: discord.Interaction, channel: discord.TextChannel | discord.VoiceChannel
    ) -> None:
        self._needs_message_content()
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        await bot_of(interaction).store.aio.set_autoread_channel(guild_id, channel.id, True)
        log.info("Auto-read: guild %s user %s added channel %s", guild_id, interaction.user.id, channel.id)
        await answer(
            interaction,
            f"Messages in {channel.mention} are now read aloud for members who turned it on "
            "(/autoread me on) while they are in my voice channel.",
        )

    @channel.command(name="remove", description="Stop reading a channel aloud.")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def channel_remove(
        self, interaction: discord.Interaction, channel: discord.TextChannel | discord.VoiceChannel
    ) -> None:
        self._needs_message_content()
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        changed = await bot_of(interaction).store.aio.set_autoread_channel(guild_id, channel.id, False)
        log.info("Auto-read: guild %s user %s removed channel %s", guild_id, interaction.user.id, channel.id)
        await answer(
            interaction,
            f"{channel.mention} is no longer read aloud."
            if changed
            else f"{channel.mention} wasn't read aloud.",
        )

    @channel.command(name="list", description="See which channels are read aloud.")
    async def channel_list(self, interaction: discord.Interaction) -> None:
        self._needs_message_content()
        channels = await bot_of(interaction).store.aio.autoread_channels(guild_id_of(interaction))
        shown = sorted(f"<#{c}>" for c in channels)
        await interaction.response.send_message(
            ("Read aloud: " + ", ".join(shown))
            if shown
            else "No channel is read aloud yet (/autoread channel add).",
            ephemeral=True,
        )

    @app_commands.command(name="me", description="Have your messages read aloud in your own voice.")
    @app_commands.describe(state="on: read my messages while I'm in the bot's voice channel")
    async def me(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        self._needs_message_content()
        bot, guild_id = bot_of(interaction), guild_id_of(interaction)
        await defer_private(interaction)
        await bot.store.aio.set_autoread_member(guild_id, interaction.user.id, state == "on")
        if state == "off":
            await answer(interaction, "Your messages won't be read aloud any more.")
            return
        default = await bot.store.aio.default_voice(guild_id, interaction.user.id)
        settings = await bot.store.aio.autoread_settings(guild_id)
        while_in_voice = "while you're in my voice channel"
        if default is not None and default.is_own_voice_of(interaction.user.id):
            told = (
                "Your messages in auto-read channels will be read aloud in your voice "
                f"“{default.name}” {while_in_voice}."
            )
        else:
            told = (
                f"Your default voice “{default.name}” isn't yours (you don't own it and it wasn't cloned "
                "from you), so auto-read won't use it. "
                if default is not None
                else ""
            )
            if settings.fallback_voice_id:
                told += (
                    f"Your messages in auto-read channels will be read aloud in the server's fallback voice "
                    f"{while_in_voice}; pick a voice of your own with /voice default to be read in it."
                )
            else:
                told += (
                    "Auto-read is on for you, but nothing is read until you pick a voice of your own (one "
                    "you own, or one cloned from you) with /voice default."
                )
        await answer(interaction, told)

    @app_commands.command(name="settings", description="How auto-read behaves on this server.")
    @app_commands.describe(
        voice_chat="Also read the text chat of the voice channel I'm in",
        join="Join an opted-in member's voice channel when they post and I'm free",
        who_spoke="Say who spoke before a message: off, always, or when the speaker changes",
        fallback_voice="Voice for opted-in members without one of their own ('none' to skip them)",
        ignore_prefix="Skip messages starting with this (e.g. !); 'none' to clear",
        read_bots="Read messages from bots and webhooks",
        read_silent="Read @silent messages",
        say_links="Read a message that is only links as 'a link' (else skip it)",
        say_attachments="Read a message that is only attachments as 'an image' etc. (else skip it)",
        max_length="Longer messages are cut and end 'and so on'",
        queue_limit="Most auto-read messages waiting; older ones are dropped beyond it",
        ignore_role="Skip messages from members with this role",
        unignore_role="Stop skipping this role",
    )
    @app_commands.autocomplete(fallback_voice=voice_names)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def settings(
        self,
        interaction: discord.Interaction,
        voice_chat: bool | None = None,
        join: bool | None = None,
        who_spoke: Literal["off", "always", "change"] | None = None,
        fallback_voice: str | None = None,
        ignore_prefix: app_commands.Range[str, 1, 10] | None = None,
        read_bots: bool | None = None,
        read_silent: bool | None = None,
        say_links: bool | None = None,
        say_attachments: bool | None = None,
        max_length: app_commands.Range[int, 20, 2000] | None = None,
        queue_limit: app_commands.Range[int, 1, 100] | None = None,
        ignore_role: discord.Role | None = None,
        unignore_role: discord.Role | None = None,
    ) -> None:
        self._needs_message_content()
        bot, guild_id = bot_of(interaction), guild_id_of(interaction)
        await defer_private(interaction)
        changes: dict[str, object] = {
            k: v
            for k, v in {
                "voice_chat": voice_chat,
                "join_on_post": join,
                "who_spoke": who_spoke,
                "read_bots": read_bots,
                "read_silent": read_silent,
                "say_links": say_links,
                "say_attachments": say_attachments,
                "max_chars": max_length,
                "queue_limit": queue_limit,
            }.items()
            if v is not None
        }
        if ignore_prefix is not None:
            changes["ignore_prefix"] = (
                None if ignore_prefix.strip().lower() == "none" else ignore_prefix.strip()
            )
        if fallback_voice is not None:
            changes["fallback_voice_id"] = (
                None
                if fallback_voice.strip().lower() == "none"
                else (await bot.store.aio.get(guild_id, fallback_voice)).id
            )
        saved = await bot.store.aio.update_autoread_settings(guild_id, **changes)
        for role, on in ((ignore_role, True), (unignore_role, False)):
            if role is not None:
                await bot.store.aio.set_autoread_ignored_role(guild_id, role.id, on)
        roles = await bot.store.aio.autoread_ignored_roles(guild_id)
        log.info(
            "Auto-read: guild %s user %s changed settings %s", guild_id, interaction.user.id, sorted(changes)
        )
        embed = discord.Embed(title="Auto-read settings", colour=discord.Colour.blurple())
        embed.add_field(name="Voice-channel chat", value="read" if saved.voice_chat else "not read")
        embed.add_field(name="Join on post", value="yes" if saved.join_on_post else "no")
        embed.add_field(name="Who spoke", value=saved.who_spoke)
        embed.add_field(name="Fallback voice", value="set" if saved.fallback_voice_id else "none")
        embed.add_field(name="Ignore prefix", value=saved.ignore_prefix or "none")
        embed.add_field(
            name="Bots, @silent",
            value=f"{'read' if saved.read_bots else 'skipped'}, {'read' if saved.read_silent else 'skipped'}",
        )
        embed.add_field(
            name="Only links / attachments",
            value=f"{'said' if saved.say_links else 'skipped'} / "
            f"{'said' if saved.say_attachments else 'skipped'}",
        )
        embed.add_field(name="Max length, queue", value=f"{saved.max_chars} characters, {saved.queue_limit}")
        embed.add_field(name="Ignored roles", value=", ".join(f"<@&{r}>" for r in sorted(roles)) or "none")
        await answer(interaction, "Saved.", embed=embed)

    # --- reading ----------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or message.type not in READABLE_TYPES or message.author == self.bot.user:
            return
        if not self.bot.intents.message_content:
            return  # messages arrive (for consent replies) but without their text: nothing to read
        # One message at a time per server, in the order Discord delivered them.
        async with self._intake.setdefault(message.guild.id, asyncio.Lock()):
            try:
                await self._read(message)
            except VoiceBotError as error:
                log.info("Auto-read skipped message %s: %s", message.id, error.message)
            except Exception:
                log.exception("Auto-read failed on message %s", message.id)

    async def _read(self, message: discord.Message) -> None:
        guild = message.guild
        assert guild is not None
        bot = bot_of_client(self.bot)
        author = guild.get_member(message.author.id) or message.author
        if not isinstance(author, discord.Member) or author.voice is None:
            return  # most messages: no library read for an author who isn't in a voice channel
        state = await asyncio.to_thread(snapshot, bot.store, guild.id, author.id)
        if author.id not in state.members:
            return
        where = self._voice_channel_for(message, author, state)
        if where is None:
            return
        listeners = [m for m in where.members if not m.bot]
        if not all(message.channel.permissions_for(m).view_channel for m in listeners):
            return  # someone listening can't see where it was posted
        if state.voice is None:
            raise NoDefaultVoice()
        waiting = self._waiting.setdefault(guild.id, Waiting())
        post = autoread.Post(
            author_id=author.id,
            author_name=author.display_name,
            content=message.content,
            is_bot=message.author.bot,
            is_webhook=message.webhook_id is not None,
            silent=message.flags.suppress_notifications,
            role_ids=frozenset(r.id for r in author.roles),
            attachment_types=tuple(a.content_type or "" for a in message.attachments),
        )
        words = autoread.words_for(post, state.settings.rules(state.ignored_roles), waiting.last_speaker)
        if isinstance(words, autoread.Skipped):
            log.debug("Auto-read skipped message %s: %s", message.id, words.value)
            return
        names = await mentions.names_for(
            words, guild=guild, reader=author, message=message, listeners=listeners
        )
        request = await asyncio.to_thread(
            lambda: speech.plan(
                bot.store,
                guild_id=guild.id,
                user_id=author.id,
                voice_name=state.voice.name,  # type: ignore[union-attr]
                words=words,
                max_chars=max(bot.config.max_text_chars, len(words)),
                resolve=names,
                params=speech.settings(live=True),
            )
        )
        reservation = await bot.limits.reserve(
            state.guild_settings, author.id, speech.longest_seconds(request), voice_id=request.voice.id
        )
        if message.id in waiting.withdrawn:  # edited or deleted while it was being taken in
            bot.limits.release(reservation)
            return
        self._make_room(guild.id, waiting, state.settings.queue_limit)

        def ended(outcome: Outcome, message_id: int = message.id) -> None:
            waiting.items.pop(message_id, None)

        async def problem(text_: str, message_id: int = message.id) -> None:
            log.warning("Auto-read of message %s: %s", message_id, text_)

        # Listeners change while it waits: each is checked again as it starts, and anyone joining
        # while it plays, against where it was posted and every channel it names.
        heard_channels = [
            cast(discord.abc.GuildChannel, message.channel),
            *mentions.named_channels(guild, names),
        ]
        queued = await delivery.speak_live(
            bot,
            request,
            reservation,
            where,
            delivery.Answer(on_problem=problem, on_end=ended),
            may_hear=mentions.may_hear(heard_channels),
        )
        waiting.items[message.id] = queued.item
        waiting.last_speaker = author.id

    def _voice_channel_for(
        self, message: discord.Message, author: discord.Member, state: Snapshot
    ) -> discord.VoiceChannel | discord.StageChannel | None:
        """Where the message would be heard, or None when it isn't read."""
        theirs = author.voice.channel if author.voice else None
        if theirs is None:
            return None
        ours = message.guild.me.voice.channel if message.guild and message.guild.me.voice else None
        if ours is not None and ours.id != theirs.id:
            return None  # they're in another channel than the bot
        if ours is None and not (state.settings.join_on_post and self._free(message.guild)):
            return None
        chat_of_the_channel = state.settings.voice_chat and message.channel.id == theirs.id
        if not chat_of_the_channel and message.channel.id not in state.channels:
            return None
        return theirs

    def _free(self, guild: discord.Guild | None) -> bool:
        return guild is not None and not bot_of_client(self.bot).playback.queue(guild.id)

    def _make_room(self, guild_id: int, waiting: Waiting, limit: int) -> None:
        """Flood rule: drop the oldest auto-read messages still waiting until there is room for one more."""
        playback = bot_of_client(self.bot).playback
        current = playback.queue(guild_id)[:1]
        pending = [mid for mid, item in waiting.items.items() if item not in current]
        while len(pending) >= limit:
            oldest = pending.pop(0)
            item = waiting.items.pop(oldest, None)
            if item is not None and playback.withdraw(guild_id, item):
                waiting.dropped += 1
                log.info(
                    "Auto-read: guild %s dropped message %s (queue full, %d dropped)",
                    guild_id,
                    oldest,
                    waiting.dropped,
                )

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.data.get("edited_timestamp"):  # not Discord unfurling a link's embed
            self._withdraw(payload.guild_id, payload.message_id, "edited")

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self._withdraw(payload.guild_id, payload.message_id, "deleted")

    def _withdraw(self, guild_id: int | None, message_id: int, why: str) -> None:
        waiting = self._waiting.get(guild_id or 0)
        item = waiting.items.pop(message_id, None) if waiting else None
        intake = self._intake.get(guild_id or 0)
        if item is None and guild_id and intake is not None and intake.locked():
            # a message of this server is being taken in right now: perhaps this one, not read then
            self._waiting.setdefault(guild_id, Waiting()).withdrawn.append(message_id)
        if item is not None and guild_id and bot_of_client(self.bot).playback.withdraw(guild_id, item):
            log.info(
                "Auto-read: message %s was %s before it was read; taken out of the queue", message_id, why
            )


def bot_of_client(bot: commands.Bot) -> VoiceBot:
    return cast("VoiceBot", bot)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AutoRead(bot))
