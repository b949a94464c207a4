"""``FakeDiscord``: the test-facing API that starts the REST, gateway and voice servers on
127.0.0.1 (random ports), builds the world, drives interactions and exposes what the bot did.

Typical use (see ``tests/e2e/test_fakediscord.py``)::

    async with FakeDiscord() as fake:                   # discord.py now points at the fake
        guild = fake.add_guild("Test Guild")            # with #general and a "Voice" channel
        alice = fake.add_member(guild, "alice", permissions=Perm.ATTACH_FILES)
        client = MyBot(connector=fake.connector(), guild_ready_timeout=0.1)
        async with fake.running(client):                # logs in, waits for on_ready, closes after
            await fake.wait_for_commands("say")
            interaction = await fake.invoke("say", {"text": "hi"}, user=alice)
            final = await interaction.wait_for(lambda r: r.kind == "edit")

Messages (see ``tests/e2e/test_fakediscord_messages.py``)::

    fake.privileged_intents |= Intent.MESSAGE_CONTENT    # else content arrives empty (or 4014)
    note = fake.add_message(voice, alice, "hi", silent=True)   # MESSAGE_CREATE in a voice chat
    fake.edit_message(note, "hello"); fake.delete_message(note)
    fake.add_message(general, fake.add_webhook(general, "CI"), "build passed")

Sharding (see ``tests/e2e/test_fake_sharding.py``)::

    fake.sharding.shards = 2                            # GET /gateway/bot's recommendation
    fake.add_guild("Even", shard=(0, 2))                # an id on shard 0 of 2
    client = discord.AutoShardedClient(shard_count=2, ...)   # each shard gets its own guilds
    fake.sharding.identify_window = 0.3                 # one IDENTIFY per bucket per 0.3 s, else op 9
    [(r.shard, r.outcome) for r in fake.identifies]

Everything runs in the test's event loop; times are ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
from aiohttp import web

from . import messages, tls
from .dave import DaveCall
from .discordpy import point_discord_py_at
from .faults import Fault, FaultInjector
from .gateway import GatewayServer, GatewaySession
from .intents import PRIVILEGED, Intent, intents_value
from .interactions import InteractionFactory, InteractionRecord, Reply
from .models import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DEFAULT_UPLOAD_LIMIT,
    Attachment,
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    MessageFlag,
    Overwrite,
    Role,
    User,
    Webhook,
    encode_waveform,
    permission_value,
)
from .rest import API_PREFIX, RestApi
from .state import CommandSync, IdentifyRecord, RequestLog, Sharding, World
from .util import snowflake_on_shard
from .voice import VoicePacket, VoiceServer, VoiceSession

T = TypeVar("T")


class FakeDiscord:
    """A loopback Discord for one test: ``async with FakeDiscord() as fake: ...``.

    ``token`` is the bot token the fake accepts; ``ack_deadline`` is how long the bot has to answer
    an interaction (Discord: 3 s; None disables the check); with ``patch_discord`` (default) the
    fake points discord.py at itself while running and restores it on exit. The heartbeat
    intervals are what HELLO announces (discord.py beats the voice gateway at min(interval, 5 s)).
    With ``dave`` (default) voice is end-to-end encrypted as Discord requires (see ``dave.py``);
    ``dave=False`` answers ``dave_protocol_version: 0`` and accepts clients that offer no DAVE.
    ``privileged_intents`` are those switched on in the Developer Portal (an ``Intent`` or a
    ``discord.Intents``; only GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT count): by default
    Server Members only, so a bot asking for Message Content is refused with 4014.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "Echo",
        ack_deadline: float | None = 3.0,
        patch_discord: bool = True,
        heartbeat_interval_ms: int = 41_250,
        voice_heartbeat_interval_ms: float = 13_750.0,
        dave: bool = True,
        privileged_intents: Any = Intent.GUILD_MEMBERS,
    ) -> None:
        self.world = World(
            token=token,
            bot_name=bot_name,
            ack_deadline=ack_deadline,
            privileged_intents=intents_value(privileged_intents),
        )
        self.faults = FaultInjector()
        self.rest = RestApi(self.world, self.faults)
        self.gateway = GatewayServer(self.world, heartbeat_interval_ms=heartbeat_interval_ms)
        self.voice = VoiceServer(self.world, heartbeat_interval_ms=voice_heartbeat_interval_ms, dave=dave)
        self.gateway.voice = self.voice
        self._factory = InteractionFactory(self.world)
        self._left_guilds: dict[int, Guild] = {}  # guilds the bot was removed from (`remove_bot`)
        self._patch_discord = patch_discord
        self._patch: contextlib.ExitStack | None = None
        self._runner: web.AppRunner | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._client_ssl: Any = None
        self.http_base = ""

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the servers on random 127.0.0.1 ports (and patch discord.py if asked)."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fakediscord-")
        cert, key = await tls.make_self_signed_cert(Path(self._tmp.name))
        self._client_ssl = tls.client_context(cert)
        app = web.Application(client_max_size=512 * 1024 * 1024)
        self.rest.install(app)
        self.gateway.install(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.http_base = f"http://127.0.0.1:{port}"
        self.world.http_base = self.http_base
        self.gateway.base_url = f"ws://127.0.0.1:{port}"
        self.rest.gateway_url = self.gateway_url
        await self.voice.start(tls.server_context(cert, key))
        if self._patch_discord:
            self._patch = contextlib.ExitStack()
            self._patch.enter_context(point_discord_py_at(self.api_base, self.gateway_url))

    async def close(self) -> None:
        """Stop everything and restore discord.py; safe to call twice."""
        if self._patch is not None:
            self._patch.close()
            self._patch = None
        await self.gateway.close()
        await self.voice.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- pointing a client at the fake -------------------------------------------------------------

    @property
    def token(self) -> str:
        return self.world.token

    @property
    def api_base(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return self.http_base + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The value for ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``."""
        return self.gateway.base_url + "/gateway"

    @property
    def application_id(self) -> int:
        return self.world.application_id

    @property
    def bot_user(self) -> User:
        return self.world.bot

    @property
    def privileged_intents(self) -> Intent:
        """The privileged intents enabled for the application in the Developer Portal."""
        return Intent(self.world.privileged_intents)

    @privileged_intents.setter
    def privileged_intents(self, value: Any) -> None:
        """Toggle them (``fake.privileged_intents |= Intent.MESSAGE_CONTENT``): REST reads and the
        application's flags change at once, the gateway from the next IDENTIFY."""
        self.world.privileged_intents = intents_value(value) & int(PRIVILEGED)

    def connector(self) -> aiohttp.TCPConnector:
        """The ``connector=`` for the bot's ``discord.Client``: trusts the fake's TLS certificate,
        which the voice websocket needs."""
        return aiohttp.TCPConnector(ssl=self._client_ssl, limit=0)

    @asynccontextmanager
    async def running(self, client: Any, *, ready_timeout: float = 10.0) -> AsyncIterator[Any]:
        """Run ``client.start(fake.token)`` until the block ends: waits for ``on_ready`` on entry,
        closes the client and awaits its task on exit (re-raising anything it raised)."""
        task = asyncio.create_task(client.start(self.token), name="fakediscord-client")
        failed = False
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ready_timeout
            while not client.is_ready():
                if task.done():
                    task.result()
                    raise RuntimeError("the client stopped before becoming ready")
                if loop.time() > deadline:
                    raise TimeoutError(f"the client was not ready within {ready_timeout}s")
                await asyncio.sleep(0.01)
            yield client
        except BaseException:
            failed = True
            raise
        finally:
            await client.close()
            try:
                await asyncio.wait_for(task, 15.0)
            except Exception:
                if not failed:  # never hide the test's own failure behind the client's
                    raise

    # -- building the world ------------------------------------------------------------------------

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        everyone_permissions: Any = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: Any = DEFAULT_BOT_PERMISSIONS,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        text_channels: Iterable[str] = ("general",),
        voice_channels: Iterable[str] = ("Voice",),
        shard: tuple[int, int] | None = None,
    ) -> Guild:
        """A guild with the bot (holding ``bot_permissions``), an owner, @everyone and channels.

        ``shard=(id, count)`` picks a guild id whose events go to that shard
        (``(guild_id >> 22) % count == id``); otherwise ids are time-ordered snowflakes, so guilds
        made in the same millisecond share a shard."""
        guild_id = None
        if shard is not None:
            guild_id = snowflake_on_shard(self.world.snowflake(), *shard)
        guild = self.world.add_guild(
            name,
            everyone_permissions=permission_value(everyone_permissions),
            bot_permissions=permission_value(bot_permissions),
            upload_limit=upload_limit,
            text_channels=tuple(text_channels),
            voice_channels=tuple(voice_channels),
            guild_id=guild_id,
        )
        self.gateway.guild_created(guild.id)
        return guild

    def remove_bot(self, guild: Guild) -> None:
        """The bot is kicked from ``guild`` (or leaves it): GUILD_DELETE (without ``unavailable``, as
        Discord sends it for a removal) to its shard, and the guild is gone from the bot's world until
        ``invite_bot`` brings it back, members, channels and all."""
        self.world.dispatch("GUILD_DELETE", {"id": str(guild.id)})
        self._left_guilds[guild.id] = self.world.guilds.pop(guild.id)

    def invite_bot(self, guild: Guild) -> None:
        """The bot is invited back to a guild it was removed from: GUILD_CREATE to its shard."""
        self.world.guilds[guild.id] = self._left_guilds.pop(guild.id)
        self.gateway.guild_created(guild.id, joined=True)

    def add_text_channel(self, guild: Guild, name: str) -> Channel:
        return self._add_channel(guild, name, ChannelType.GUILD_TEXT)

    def add_voice_channel(
        self, guild: Guild, name: str = "Voice", *, bitrate: int = 64_000, user_limit: int = 0
    ) -> Channel:
        return self._add_channel(guild, name, ChannelType.GUILD_VOICE, bitrate=bitrate, user_limit=user_limit)

    def _add_channel(self, guild: Guild, name: str, channel_type: int, **extra: Any) -> Channel:
        channel = self.world.add_channel(guild, name, channel_type, **extra)
        self.world.dispatch("CHANNEL_CREATE", channel.payload())
        return channel

    def add_role(self, guild: Guild, name: str, permissions: Any = 0) -> Role:
        role = self.world.add_role(guild, name, permission_value(permissions))
        self.world.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def add_member(
        self,
        guild: Guild,
        name: str,
        *,
        permissions: Any = None,
        roles: Iterable[Role | str] = (),
        bot: bool = False,
        nick: str | None = None,
    ) -> Member:
        """A member whose permissions are @everyone's | their roles'. ``permissions`` adds a
        personal role granting exactly those bits; ``roles`` are Role objects or names (a name
        not yet in the guild becomes a role without permissions). ``nick`` is their server nickname.

        A bot without the GUILD_MEMBERS intent never hears of the member (GUILD_CREATE and
        GUILD_MEMBER_ADD leave them out, as Discord does) unless they join a voice channel."""
        role_ids = []
        for role in roles:
            if isinstance(role, str):
                existing = next((r for r in guild.roles.values() if r.name == role), None)
                role = existing or self.add_role(guild, role)
            role_ids.append(role.id)
        if permissions is not None:
            role_ids.append(self.add_role(guild, f"{name} permissions", permissions).id)
        member = self.world.add_member(guild, name, role_ids, bot=bot, nick=nick)
        self.world.dispatch("GUILD_MEMBER_ADD", {**member.payload(), "guild_id": str(guild.id)})
        return member

    def set_channel_permissions(
        self, channel: Channel, target: Role | Member, *, allow: Any = 0, deny: Any = 0
    ) -> None:
        """Set (replace) ``channel``'s overwrite for a role (the guild's id role is @everyone) or a
        member, and dispatch CHANNEL_UPDATE; ``allow=0, deny=0`` removes it."""
        kind = Overwrite.MEMBER if isinstance(target, Member) else Overwrite.ROLE
        allow, deny = permission_value(allow), permission_value(deny)
        if allow or deny:
            channel.overwrites[target.id] = Overwrite(target.id, kind, allow, deny)
        else:
            channel.overwrites.pop(target.id, None)
        self.world.dispatch("CHANNEL_UPDATE", channel.payload())

    def attachment(
        self,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        duration_secs: float | None = None,
        waveform: bytes | str | None = None,
        description: str | None = None,
    ) -> Attachment:
        """A file a user attaches to a command option; ``attachment.url`` serves ``data``."""
        return self.world.store_attachment(
            self.world.application_id,
            filename,
            data,
            content_type,
            duration_secs=duration_secs,
            waveform=encode_waveform(waveform),
            description=description,
        )

    def add_message(
        self,
        channel: Channel,
        author: Member | Webhook,
        content: str = "",
        *,
        attachments: Iterable[tuple[str, bytes] | Attachment] = (),
        embeds: Iterable[dict[str, Any]] = (),
        flags: int = 0,
        silent: bool = False,
        poll: tuple[str, Sequence[str]] | None = None,
        reply_to: Message | None = None,
    ) -> Message:
        """A message a member (a person or another bot) or a webhook posted in a text channel or a
        voice channel's text chat, dispatched as MESSAGE_CREATE (to a bot that can see the
        channel). ``attachments`` are Attachment objects or ``(filename, bytes)`` pairs; members
        and roles named in ``content`` (``<@id>``, ``<@&id>``) become its mentions; ``silent``
        sets SUPPRESS_NOTIFICATIONS, as "@silent" does; ``poll`` is ``(question, answers)``."""
        if silent:
            flags |= MessageFlag.SUPPRESS_NOTIFICATIONS
        return messages.post(
            self.world,
            channel,
            author,
            content,
            attachments=attachments,
            embeds=embeds,
            flags=flags,
            poll=poll,
            reply_to=reply_to,
        )

    def add_dm_message(
        self,
        author: Member | User,
        content: str = "",
        *,
        attachments: Iterable[tuple[str, bytes] | Attachment] = (),
        flags: int = 0,
    ) -> Message:
        """A message ``author`` sent the bot in a DM (MESSAGE_CREATE without ``guild_id``)."""
        user = author.user if isinstance(author, Member) else author
        channel = self.world.dm_channel(user)
        return messages.post(self.world, channel, user, content, attachments=attachments, flags=flags)

    def edit_message(
        self, message: Message, content: str, *, embeds: Iterable[dict[str, Any]] | None = None
    ) -> Message:
        """Its author edits a message a test posted: new content (and embeds), MESSAGE_UPDATE."""
        return messages.edit(self.world, message, content, embeds=embeds)

    def delete_message(self, message: Message) -> None:
        """Its author (or a moderator) deletes a message: REST answers 10008, MESSAGE_DELETE."""
        messages.delete(self.world, message)

    def add_webhook(
        self, channel: Channel, name: str = "Captain Hook", *, avatar: str | None = None
    ) -> Webhook:
        """A webhook in ``channel`` (an integration); post as it with ``add_message(channel, hook)``."""
        webhook = self.world.add_webhook(channel, name, avatar)
        self.world.dispatch(
            "WEBHOOKS_UPDATE", {"guild_id": str(webhook.guild_id), "channel_id": str(channel.id)}
        )
        return webhook

    def dm_channel(self, user: Member | User) -> Channel:
        """The DM channel between the bot and ``user``."""
        return self.world.dm_channel(user.user if isinstance(user, Member) else user)

    def voice_message(
        self,
        channel: Channel,
        author: Member,
        ogg_opus: bytes,
        *,
        duration_secs: float,
        waveform: bytes | str | None = None,
        filename: str = "voice-message.ogg",
        reply_to: Message | None = None,
    ) -> Message:
        """A Discord voice message: flag 8192, one Ogg/Opus attachment with duration and waveform."""
        attachment = self.world.store_attachment(
            channel.id,
            filename,
            ogg_opus,
            "audio/ogg",
            duration_secs=duration_secs,
            waveform=encode_waveform(waveform if waveform is not None else bytes([128] * 64)),
        )
        return self.add_message(
            channel, author, attachments=[attachment], flags=MessageFlag.IS_VOICE_MESSAGE, reply_to=reply_to
        )

    # -- commands ----------------------------------------------------------------------------------

    def commands(self, guild: Guild | int | None = None) -> list[dict[str, Any]]:
        """Commands as last synced, global (``guild=None``) or for one guild."""
        return self.world.commands.in_scope(None if guild is None else self._guild(guild).id)

    @property
    def command_syncs(self) -> list[CommandSync]:
        return self.world.commands.syncs

    async def wait_for_commands(
        self,
        *names: str,
        guild: Guild | int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until the bot has synced commands with all these names (in the guild or globally)."""

        def synced() -> bool:
            have = {c["name"] for c in self.commands(None)}
            if guild is not None:
                have |= {c["name"] for c in self.commands(guild)}
            return set(names) <= have and bool(self.command_syncs)

        await self.wait_until(synced, timeout=timeout, describe=lambda: f"synced: {self.command_syncs}")

    # -- interactions ------------------------------------------------------------------------------

    async def invoke(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: Member,
        guild: Guild | int | None = None,
        channel: Channel | None = None,
        attachments: Iterable[Attachment] = (),
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Run slash command ``name`` (``"group sub"`` for subcommands) as ``user``.

        Option values are typed from the synced schema: str/int/bool/float, Member/User, Channel,
        Role, Attachment. ``attachments`` fill attachment options not named in ``options``, in order.
        ``guild`` defaults to the member's guild, ``channel`` to its first text channel.
        """
        record = self._factory.slash(
            name,
            options or {},
            member=user,
            channel=self._channel(user, channel, guild),
            attachments=attachments,
            locale=locale,
        )
        return self._dispatch(record)

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        *,
        focused: str,
        user: Member,
        guild: Guild | int | None = None,
        channel: Channel | None = None,
    ) -> InteractionRecord:
        """Ask for autocomplete choices while ``user`` types ``options[focused]``."""
        record = self._factory.slash(
            name, options, member=user, channel=self._channel(user, channel, guild), focused=focused
        )
        return self._dispatch(record)

    async def invoke_user_command(
        self,
        name: str,
        *,
        target: Member | User,
        user: Member,
        guild: Guild | int | None = None,
        channel: Channel | None = None,
    ) -> InteractionRecord:
        """Run user context-menu command ``name`` on ``target``."""
        channel = self._channel(user, channel, guild)
        record = self._factory.user_command(name, target, member=user, channel=channel)
        return self._dispatch(record)

    async def invoke_message_command(
        self,
        name: str,
        *,
        message: Message,
        user: Member,
        guild: Guild | int | None = None,
        channel: Channel | None = None,
    ) -> InteractionRecord:
        """Run message context-menu command ``name`` on ``message`` (in the message's channel)."""
        channel = self._channel(user, channel or self.world.channel(message.channel_id), guild)
        record = self._factory.message_command(name, message, member=user, channel=channel)
        return self._dispatch(record)

    async def click(
        self,
        message: Message | Reply | InteractionRecord | int,
        custom_id: str,
        *,
        user: Member,
        values: list[str] | None = None,
    ) -> InteractionRecord:
        """Press a button (or pick ``values`` in a string select) on a message the bot sent."""
        record = self._factory.component(self._message(message), custom_id, member=user, values=values)
        return self._dispatch(record)

    async def submit_modal(
        self,
        modal: str | InteractionRecord,
        values: dict[str, Any],
        *,
        user: Member,
        guild: Guild | int | None = None,
        channel: Channel | None = None,
        custom_id: str | None = None,
    ) -> InteractionRecord:
        """Submit a modal the bot opened: the one opened by interaction ``modal``, or the most recent
        one with custom_id ``modal``. ``values`` map input custom_ids to text (or lists for selects);
        ``custom_id`` overrides the submitted id (a stale or forged submit)."""
        if isinstance(modal, InteractionRecord):
            opener: InteractionRecord | None = modal
        else:
            opener = next(
                (
                    r
                    for r in reversed(list(self.world.interactions.values()))
                    if r.modal is not None and r.modal.get("custom_id") == modal
                ),
                None,
            )
        if opener is None or opener.modal is None:
            raise LookupError(f"the bot never opened a modal {modal!r}")
        shown = opener.modal if custom_id is None else {**opener.modal, "custom_id": custom_id}
        message = self.world.messages.get(opener.source_message_id or 0)
        if channel is None:
            channel = self.world.channel(opener.channel_id)
        record = self._factory.modal_submit(
            shown,
            values,
            member=user,
            channel=self._channel(user, channel, guild),
            message=message,
        )
        return self._dispatch(record)

    @property
    def interactions(self) -> list[InteractionRecord]:
        return list(self.world.interactions.values())

    def channel_messages(self, channel: Channel | None = None) -> list[Reply]:
        """What the bot did through channel routes (create/edit/delete), oldest first."""
        return [r for r in self.world.channel_replies if channel is None or r.channel_id == channel.id]

    async def wait_for_message(
        self,
        predicate: Callable[[Reply], bool] = lambda r: True,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Reply:
        return await self.wait_until(
            lambda: next((r for r in self.world.channel_replies if predicate(r)), None),
            timeout=timeout,
            describe=lambda: f"channel replies: {[r.summary() for r in self.world.channel_replies]}",
        )

    def _guild(self, guild: Guild | int) -> Guild:
        return self.world.guilds[guild if isinstance(guild, int) else guild.id]

    def _channel(self, member: Member, channel: Channel | None, guild: Guild | int | None = None) -> Channel:
        if guild is not None and self._guild(guild).id != member.guild_id:
            raise ValueError(f"{member.name} is not a member of guild {self._guild(guild).name!r}")
        if channel is not None:
            if channel.guild_id != member.guild_id:
                raise ValueError(f"channel {channel.name!r} is not in {member.name}'s guild")
            return channel
        guild = self.world.guilds[member.guild_id]
        if not guild.text_channels:
            raise LookupError(f"guild {guild.name!r} has no text channel; pass channel=")
        return guild.text_channels[0]

    def _message(self, ref: Message | Reply | InteractionRecord | int) -> Message:
        if isinstance(ref, Message):
            return ref
        if isinstance(ref, InteractionRecord):
            message_id = ref.original_message_id
        elif isinstance(ref, Reply):
            message_id = ref.message_id
        else:
            message_id = ref
        message = self.world.messages.get(message_id or 0)
        if message is None:
            raise LookupError(f"no message {message_id}")
        return message

    def _dispatch(self, record: InteractionRecord) -> InteractionRecord:
        if not self.gateway.sessions:
            raise RuntimeError("no bot has logged in to the fake gateway yet")
        record.dispatched_at = time.monotonic()
        self.gateway.dispatch("INTERACTION_CREATE", record.payload)
        return record

    # -- voice -----------------------------------------------------------------------------------

    def voice_sessions(self, guild: Guild | int) -> list[VoiceSession]:
        """Every voice-gateway IDENTIFY for this guild, oldest first."""
        return self.voice.sessions_for(self._guild(guild).id)

    def voice_packets(self, guild: Guild | int) -> list[VoicePacket]:
        """Decoded RTP packets the bot sent for this guild, in arrival order (``packet.dave``: it came
        end-to-end encrypted and the listener decrypted it)."""
        return self.voice.packets(self._guild(guild).id)

    def voice_pcm(self, guild: Guild | int, *, mono: bool = False) -> np.ndarray:
        """What the bot played in this guild: float32 at 48 kHz, shape ``(samples, 2)`` (or
        ``(samples,)`` with ``mono=True``), packets concatenated in arrival order."""
        pcm = self.voice.pcm(self._guild(guild).id)
        return pcm.mean(axis=1) if mono else pcm

    def bot_voice_channel(self, guild: Guild | int) -> Channel | None:
        """The voice channel the bot sits in (per its last op 4), or None."""
        guild = self._guild(guild)
        state = guild.voice_states.get(self.world.bot.id)
        return None if state is None or state.channel_id is None else guild.channels[state.channel_id]

    def dave_call(self, guild: Guild | int) -> DaveCall:
        """The DAVE state of the bot's newest voice connection in this guild (epoch, members, transitions)."""
        calls = [s.dave for s in self.voice_sessions(guild) if s.dave is not None]
        if not calls:
            raise LookupError("the bot has no DAVE voice session in this guild")
        return calls[-1]

    async def member_join_voice(self, member: Member, channel: Channel) -> None:
        """``member`` joins ``channel``; if the bot is there, they join its DAVE group (a new epoch)."""
        self.gateway.set_voice_state(member.guild_id, member.id, channel.id)
        await self.voice.member_moved(member.guild_id, member.id, channel.id)

    async def member_leave_voice(self, member: Member) -> None:
        self.gateway.set_voice_state(member.guild_id, member.id, None)
        await self.voice.member_moved(member.guild_id, member.id, None)

    async def member_speak(self, member: Member, packets: Iterable[bytes], *, interval: float = 0.02) -> int:
        """Relay ``member``'s Opus packets to the bot (SPEAKING, then encrypted RTP every
        ``interval`` s), as Discord does when someone talks in the bot's voice channel."""
        guild = self.world.guilds[member.guild_id]
        state = guild.voice_states.get(member.id)
        if state is None or state.channel_id is None:
            raise LookupError(f"{member.name} is not in a voice channel")
        bot_channel = self.bot_voice_channel(guild)
        if bot_channel is None or bot_channel.id != state.channel_id:
            raise LookupError(f"{member.name} is not in the bot's voice channel")
        return await self.voice.send_audio(guild.id, member.id, list(packets), interval=interval)

    async def drop_voice(self, guild: Guild | int, *, code: int | None = None) -> VoiceSession:
        """Drop the guild's voice websocket: close it with ``code`` (e.g. 4015) or, with None,
        abort the TCP connection so the client sees an abnormal closure (1006). See ``voice.py``
        for how discord.py 2.7 reacts to each (a 1006 reconnects; a 4015 stalls for 30 s)."""
        session = self.voice.drop(self._guild(guild).id, code)
        await asyncio.sleep(0)
        return session

    # -- gateway ---------------------------------------------------------------------------------

    @property
    def gateway_sessions(self) -> list[GatewaySession]:
        return list(self.gateway.sessions.values())

    async def drop_gateway(self, *, code: int | None = 4000) -> None:
        """Close the bot's gateway connection (``None`` = abort TCP); discord.py resumes."""
        if not await self.gateway.drop(code):
            raise RuntimeError("no live gateway connection to drop")

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and resumes."""
        self.gateway.send_op(7, None)

    @property
    def sharding(self) -> Sharding:
        """The recommended shard count, session start limit, guilds-per-shard limit (4011) and
        IDENTIFY window the fake reports and enforces; set any field (see ``gateway.py``)."""
        return self.world.sharding

    @property
    def identifies(self) -> list[IdentifyRecord]:
        """Every IDENTIFY received, oldest first: time, shard, bucket and outcome."""
        return self.world.sharding.identifies

    # -- REST faults and logs ----------------------------------------------------------------------

    def arm_fault(self, route: str, kind: str, count: int = 1, **options: Any) -> Fault:
        """Make the next ``count`` requests matching ``route`` (``"POST /webhooks/*"``) fail with
        ``kind``: ``"429"`` (``retry_after=``, ``is_global=``), ``"500"``, ``"slow"`` (``delay=``),
        ``"too_large"`` (413/40005) or ``"error"`` (``status=``, ``code=``, ``message=``)."""
        return self.faults.arm(route, kind, count, **options)

    @property
    def requests(self) -> list[RequestLog]:
        return self.world.requests

    @property
    def unhandled_requests(self) -> list[RequestLog]:
        return self.rest.unhandled

    @property
    def refused_requests(self) -> list[RequestLog]:
        """Requests refused for breaking one of Discord's limits (``log.refusal`` says which)."""
        return [log for log in self.world.requests if log.refusal]

    # -- waiting -----------------------------------------------------------------------------------

    async def wait_until(
        self,
        condition: Callable[[], T],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Wait until ``condition()`` is truthy (re-checked whenever the fake records anything,
        and every 50 ms); raises ``TimeoutError`` with ``describe()`` after ``timeout``."""
        return await self.world.signal.wait_until(condition, timeout=timeout, describe=describe)
