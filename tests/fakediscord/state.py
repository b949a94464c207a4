"""Everything the fake knows, in one place: the world (guilds, users, DMs, webhooks, messages), the
privileged intents enabled for the application, synced commands, interactions in flight, uploaded
bytes, a log of REST requests and the sharding settings (``Sharding``: what ``GET /gateway/bot``
reports and the gateway enforces, and every IDENTIFY it received).

The REST, gateway and voice servers share one :class:`World`; the gateway installs ``dispatch`` so
any part can push a gateway event (e.g. MESSAGE_CREATE after a REST message create).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import intents
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
    Role,
    User,
    Webhook,
    guess_content_type,
)
from .util import Signal, SnowflakeFactory

if TYPE_CHECKING:
    from .interactions import InteractionRecord, Reply


@dataclass
class RequestLog:
    """One REST request as the fake saw it (``path`` is relative to ``/api/v10``)."""

    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    fault: str | None = None
    refusal: str | None = None  # the Discord limit it broke, when the fake refused it (see limits)
    at: float = field(default_factory=time.monotonic)


@dataclass
class CommandSync:
    """One bulk overwrite of application commands (``guild_id`` None = global)."""

    guild_id: int | None
    commands: list[dict[str, Any]]
    at: float = field(default_factory=time.monotonic)


@dataclass
class IdentifyRecord:
    """One IDENTIFY the gateway received (``FakeDiscord.identifies``), in arrival order.

    ``shard`` is ``[id, count]`` as sent (``(0, 1)`` when absent, None when not two integers);
    ``bucket`` is its concurrency bucket, ``id % max_concurrency``; ``outcome`` is ``"ready"`` (a
    session started), ``"invalid_session"`` (too early for its bucket: op 9 ``d: false``) or
    ``"closed"`` (``close_code`` says why: 4004, 4005, 4010, 4011, 4014)."""

    at: float  # time.monotonic()
    shard: tuple[int, int] | None
    bucket: int | None
    outcome: str = "ready"
    close_code: int | None = None


@dataclass
class Sharding:
    """Sharding as the fake's Discord sees this bot; tests set any field (``fake.sharding``).

    ``shards`` is the recommended count ``GET /gateway/bot`` reports; ``total``, ``remaining``,
    ``reset_after`` (ms) and ``max_concurrency`` make its ``session_start_limit`` (``remaining``
    goes down by one per session started, never below 0; reaching 0 is not enforced).
    ``max_guilds_per_shard`` is the most guilds one session may hold before IDENTIFY is closed
    with 4011 (Discord: 2,500). ``identify_window`` is how long after an accepted IDENTIFY another
    one in the same bucket is refused (Discord: 5 s); 0, the default, enforces nothing, so tests
    that log several clients in one after another are not slowed down.
    """

    shards: int = 1
    total: int = 1000
    remaining: int = 1000
    reset_after: int = 0
    max_concurrency: int = 1
    max_guilds_per_shard: int = 2500
    identify_window: float = 0.0
    identifies: list[IdentifyRecord] = field(default_factory=list)

    def session_start_limit(self) -> dict[str, int]:
        return {
            "total": self.total,
            "remaining": self.remaining,
            "reset_after": self.reset_after,
            "max_concurrency": self.max_concurrency,
        }


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class CommandRegistry:
    """Application commands as synced by the bot: ids are stable per (scope, name, type)."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.by_scope: dict[int | None, dict[tuple[str, int], dict[str, Any]]] = {}
        self.syncs: list[CommandSync] = []

    def overwrite(self, guild_id: int | None, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the commands of one scope (Discord's bulk overwrite) and return them with ids."""
        previous = self.by_scope.get(guild_id, {})
        stored: dict[tuple[str, int], dict[str, Any]] = {}
        for raw in commands:
            command = dict(raw)
            command_type = int(command.get("type", 1))
            key = (command["name"], command_type)
            old = previous.get(key)
            command.update(
                id=old["id"] if old else str(self._world.snowflake()),
                application_id=str(self._world.application_id),
                version=str(self._world.snowflake()),
                type=command_type,
                description=command.get("description", ""),
                default_member_permissions=command.get("default_member_permissions"),
                nsfw=command.get("nsfw", False),
            )
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            stored[key] = command
        self.by_scope[guild_id] = stored
        result = list(stored.values())
        self.syncs.append(CommandSync(guild_id, result))
        self._world.signal.notify()
        return result

    def in_scope(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Commands of one scope (None = global)."""
        return list(self.by_scope.get(guild_id, {}).values())

    def find(self, name: str, command_type: int, guild_id: int | None) -> dict[str, Any] | None:
        """The command a client would invoke: the guild's own first, then the global one."""
        for scope in (guild_id, None) if guild_id is not None else (None,):
            command = self.by_scope.get(scope, {}).get((name, command_type))
            if command is not None:
                return command
        return None


class World:
    """The shared state of one fake Discord."""

    def __init__(
        self,
        *,
        token: str,
        bot_name: str,
        ack_deadline: float | None,
        privileged_intents: int = 0,
    ) -> None:
        self.snowflake = SnowflakeFactory()
        self.signal = Signal()
        self.token = token
        self.ack_deadline = ack_deadline
        self.application_id = self.snowflake()
        self.owner = User(id=self.snowflake(), username="app-owner")
        self.bot = User(id=self.application_id, username=bot_name, bot=True)
        self.users: dict[int, User] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, Guild] = {}
        self.dm_channels: dict[int, Channel] = {}  # by the other user's id
        self.webhooks: dict[int, Webhook] = {}
        self.messages: dict[int, Message] = {}
        #: Privileged intents switched on in the Developer Portal (``intents.PRIVILEGED`` bits).
        self.privileged_intents = privileged_intents & intents.PRIVILEGED
        self.cdn: dict[int, tuple[str, bytes, str]] = {}
        self.commands = CommandRegistry(self)
        self.interactions: dict[int, InteractionRecord] = {}
        self.channel_replies: list[Reply] = []
        self.requests: list[RequestLog] = []
        self.http_base = ""
        self.sharding = Sharding()
        self.dispatch: Callable[[str, dict[str, Any]], None] = lambda event, data: None

    # -- lookups -------------------------------------------------------------------------------

    def channel(self, channel_id: int) -> Channel | None:
        """A guild channel or a DM channel, by id."""
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
        return next((c for c in self.dm_channels.values() if c.id == channel_id), None)

    @property
    def message_content_enabled(self) -> bool:
        """Whether the Message Content intent is on in the Portal (what REST reads obey)."""
        return bool(self.privileged_intents & intents.Intent.MESSAGE_CONTENT)

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        for record in self.interactions.values():
            if record.token == token:
                return record
        return None

    def application_payload(self) -> dict[str, Any]:
        """``GET /oauth2/applications/@me``: every key discord.py's AppInfo indexes."""
        return {
            "id": str(self.application_id),
            "name": self.bot.username,
            "icon": None,
            "description": "A bot under test",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner.payload(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": intents.application_flags(self.privileged_intents),
            "tags": [],
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "bot": self.bot.payload(),
        }

    # -- building the world ----------------------------------------------------------------------

    def add_guild(
        self,
        name: str,
        *,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        text_channels: tuple[str, ...] = ("general",),
        voice_channels: tuple[str, ...] = (),
        guild_id: int | None = None,
    ) -> Guild:
        guild_id = guild_id or self.snowflake()
        guild = Guild(id=guild_id, name=name, owner_id=self.owner.id, upload_limit=upload_limit)
        guild.roles[guild_id] = Role(
            id=guild_id, guild_id=guild_id, name="@everyone", permissions=everyone_permissions
        )
        bot_role = self.add_role(guild, self.bot.username, bot_permissions, managed=True)
        guild.members[self.bot.id] = Member(user=self.bot, guild_id=guild_id, role_ids=[bot_role.id])
        guild.members[self.owner.id] = Member(user=self.owner, guild_id=guild_id)
        self.guilds[guild_id] = guild
        for channel_name in text_channels:
            self.add_channel(guild, channel_name, ChannelType.GUILD_TEXT)
        for channel_name in voice_channels:
            self.add_channel(guild, channel_name, ChannelType.GUILD_VOICE)
        return guild

    def add_role(self, guild: Guild, name: str, permissions: int, *, managed: bool = False) -> Role:
        role = Role(
            id=self.snowflake(),
            guild_id=guild.id,
            name=name,
            permissions=permissions,
            position=len(guild.roles),
            managed=managed,
        )
        guild.roles[role.id] = role
        return role

    def add_channel(self, guild: Guild, name: str, channel_type: int, **extra: Any) -> Channel:
        channel = Channel(
            id=self.snowflake(),
            guild_id=guild.id,
            name=name,
            type=channel_type,
            position=len(guild.channels),
            **extra,
        )
        guild.channels[channel.id] = channel
        return channel

    def add_member(
        self, guild: Guild, name: str, role_ids: list[int], *, bot: bool = False, nick: str | None = None
    ) -> Member:
        user = User(id=self.snowflake(), username=name, global_name=name.title(), bot=bot)
        self.users[user.id] = user
        member = Member(user=user, guild_id=guild.id, role_ids=role_ids, nick=nick)
        guild.members[user.id] = member
        return member

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and ``user`` (opened on first use, as Discord does)."""
        channel = self.dm_channels.get(user.id)
        if channel is None:
            channel = Channel(
                id=self.snowflake(), guild_id=None, name="", type=ChannelType.DM, recipient=user
            )
            self.dm_channels[user.id] = channel
        return channel

    def add_webhook(self, channel: Channel, name: str, avatar: str | None = None) -> Webhook:
        if channel.guild_id is None:
            raise ValueError("webhooks belong to guild channels")
        webhook = Webhook(self.snowflake(), channel.guild_id, channel.id, name, avatar)
        self.webhooks[webhook.id] = webhook
        return webhook

    def users_mentioned(self, content: str) -> list[User]:
        """Users a DM's content mentions: any known user."""
        ids = {int(i): None for i in _USER_MENTION.findall(content) if int(i) in self.users}
        return [self.users[i] for i in ids]

    def mentioned_in(self, guild: Guild, content: str) -> tuple[list[User], list[int]]:
        """Who a message mentions, as Discord records it: members of the guild and its roles."""
        users = {int(i): None for i in _USER_MENTION.findall(content) if int(i) in guild.members}
        roles = {int(i): None for i in _ROLE_MENTION.findall(content) if int(i) in guild.roles}
        return [guild.members[i].user for i in users], list(roles)

    def store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        **extra: Any,
    ) -> Attachment:
        """Keep bytes on the fake CDN and describe them as a Discord attachment."""
        attachment_id = self.snowflake()
        content_type = content_type or guess_content_type(filename)
        self.cdn[attachment_id] = (filename, data, content_type)
        url = f"{self.http_base}/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        return Attachment(
            id=attachment_id, filename=filename, data=data, content_type=content_type, url=url, **extra
        )
