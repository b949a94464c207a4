"""The fake's world: guilds, channels, roles, members, messages and attachments, with their JSON shapes.

Each model renders itself as the payload Discord sends (``payload()``), with the keys discord.py
2.7 indexes directly (``user.username/discriminator/avatar``, ``member.roles/flags``,
``channel.position``, voice ``bitrate/user_limit``, attachment ``size/url/proxy_url``, message
``type/content/channel_id/author``). Permissions are plain ints (``Perm`` bits); anything with a
``.value`` (``discord.Permissions``) is accepted wherever a permission value goes in.

Covered: guild text (type 0) and voice (type 2, with its text chat) channels, DM channels (type 1),
roles with permissions, members whose
guild-level permissions are @everyone | their roles (ADMINISTRATOR grants all), channel permission
overwrites (for @everyone, a role or a member, applied in Discord's order), voice states, and
messages with attachments (including voice messages: flag 8192, ``duration_secs``, ``waveform``),
embeds, polls and mentions (``mentions`` as plain users; ``gateway_payload`` adds the author's and
each mentioned member and the ``channel_type``, as MESSAGE_CREATE/UPDATE do and REST message
objects don't), and channel webhooks whose messages have the webhook as author (``bot: true``,
discriminator ``0000``, no member).
Not modelled: threads, forums, stage channels, group DMs, emojis, stickers, presences; the implicit denials
that follow a missing SEND_MESSAGES or CONNECT (only a missing VIEW_CHANNEL denies everything).
"""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from .util import iso_now

#: Discord's default per-attachment upload limit for a guild without boosts (10 MiB).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


class Perm(IntFlag):
    """Discord permission bits (https://discord.com/developers/docs/topics/permissions)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
    USE_SOUNDBOARD = 1 << 42
    CREATE_GUILD_EXPRESSIONS = 1 << 43
    CREATE_EVENTS = 1 << 44
    USE_EXTERNAL_SOUNDS = 1 << 45
    SEND_VOICE_MESSAGES = 1 << 46
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50


ALL_PERMISSIONS = int(Perm(sum(Perm)))

#: What @everyone can do in a freshly created guild (text, voice, voice messages, app commands).
DEFAULT_EVERYONE_PERMISSIONS = int(
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.STREAM
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.MENTION_EVERYONE
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CONNECT
    | Perm.SPEAK
    | Perm.USE_VAD
    | Perm.CHANGE_NICKNAME
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.SEND_MESSAGES_IN_THREADS
    | Perm.SEND_VOICE_MESSAGES
    | Perm.SEND_POLLS
)

#: What the bot's managed role grants when a test does not say otherwise.
DEFAULT_BOT_PERMISSIONS = int(
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.CONNECT
    | Perm.SPEAK
    | Perm.USE_VAD
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.SEND_VOICE_MESSAGES
)


def permission_value(value: Any) -> int:
    """An int from an int, a ``Perm``, or anything with ``.value`` (``discord.Permissions``)."""
    return int(getattr(value, "value", value))


class ChannelType:
    """The channel ``type`` numbers this fake uses."""

    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2


class MessageFlag:
    """Message flag bits the fake interprets (resources/message.mdx, "Message Flags")."""

    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12  # "@silent": no push or desktop notification
    IS_VOICE_MESSAGE = 1 << 13


@dataclass(eq=False)
class User:
    """A Discord user (a bot or a person)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    discriminator: str = "0"  # "0000" marks a webhook author

    @property
    def name(self) -> str:
        return self.username

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": self.discriminator,
            "global_name": self.global_name,
            "avatar": self.avatar,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(eq=False)
class Role:
    """A guild role; ``id == guild.id`` is @everyone."""

    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass(eq=False)
class Overwrite:
    """A channel permission overwrite for a role (``type`` 0, ``id == guild.id`` is @everyone) or a
    member (``type`` 1)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    ROLE = 0
    MEMBER = 1

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass(eq=False)
class Channel:
    """A guild text or voice channel, or a DM (``guild_id`` None, ``recipient`` the user);
    ``overwrites`` are keyed by role or member id."""

    id: int
    guild_id: int | None
    name: str
    type: int = ChannelType.GUILD_TEXT
    position: int = 0
    bitrate: int = 64_000
    user_limit: int = 0
    topic: str | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipient: User | None = None

    @property
    def is_voice(self) -> bool:
        return self.type == ChannelType.GUILD_VOICE

    @property
    def is_dm(self) -> bool:
        return self.type == ChannelType.DM

    def payload(self) -> dict[str, Any]:
        if self.recipient is not None:
            return {
                "id": str(self.id),
                "type": self.type,
                "recipients": [self.recipient.payload()],
                "last_message_id": None,
                "flags": 0,
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "parent_id": None,
            "nsfw": False,
            "flags": 0,
        }
        if self.is_voice:
            data.update(
                bitrate=self.bitrate,
                user_limit=self.user_limit,
                rtc_region=None,
                video_quality_mode=1,
                rate_limit_per_user=0,
                last_message_id=None,
            )
        else:
            data.update(topic=self.topic, rate_limit_per_user=0, last_message_id=None)
        return data


@dataclass(eq=False)
class Member:
    """A user's membership in one guild."""

    user: User
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.username

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(role_id) for role_id in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class VoiceState:
    """Who sits in which voice channel; ``session_id`` is the user's gateway session."""

    guild_id: int
    user_id: int
    channel_id: int | None
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False

    def payload(self, member: Member | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "guild_id": str(self.guild_id),
            "channel_id": None if self.channel_id is None else str(self.channel_id),
            "user_id": str(self.user_id),
            "session_id": self.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self.self_deaf,
            "self_mute": self.self_mute,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        if member is not None:
            data["member"] = member.payload()
        return data


@dataclass(eq=False)
class Guild:
    """A guild with its roles, channels, members and voice states, in insertion order."""

    id: int
    name: str
    owner_id: int
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    preferred_locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    voice_states: dict[int, VoiceState] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    @property
    def text_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == ChannelType.GUILD_TEXT]

    @property
    def voice_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.is_voice]

    def permissions_of(self, member: Member) -> int:
        """Guild-level permissions: @everyone | member roles; ADMINISTRATOR or owner grants all."""
        value = self.everyone.permissions
        for role_id in member.role_ids:
            value |= self.roles[role_id].permissions
        if member.id == self.owner_id or value & Perm.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return value

    def permissions_in(self, member: Member, channel: Channel) -> int:
        """Permissions in one channel: guild-level, then the overwrites for @everyone, the member's
        roles (all denies, then all allows) and the member, as Discord computes them."""
        value = self.permissions_of(member)
        if value == ALL_PERMISSIONS:
            return value
        everyone = channel.overwrites.get(self.id)
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        roles = [channel.overwrites[r] for r in member.role_ids if r in channel.overwrites]
        for overwrite in roles:
            value &= ~overwrite.deny
        for overwrite in roles:
            value |= overwrite.allow
        own = channel.overwrites.get(member.id)
        if own is not None and own.type == Overwrite.MEMBER:
            value = (value & ~own.deny) | own.allow
        return value if value & Perm.VIEW_CHANNEL else 0

    def payload(self, *, member_ids: list[int] | None = None) -> dict[str, Any]:
        """The GUILD_CREATE body; ``member_ids`` limits the members list (None = everyone)."""
        members = [m for m in self.members.values() if member_ids is None or m.id in member_ids]
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "preferred_locale": self.preferred_locale,
            "features": [],
            "max_members": 500_000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "joined_at": iso_now(),
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "roles": [role.payload() for role in self.roles.values()],
            "channels": [channel.payload() for channel in self.channels.values()],
            "threads": [],
            "members": [member.payload() for member in members],
            "voice_states": [state.payload() for state in self.voice_states.values() if state.channel_id],
            "presences": [],
            "emojis": [],
            "stickers": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


def guess_content_type(filename: str, fallback: str | None = None) -> str:
    """The content type Discord reports for an upload: guessed from the file name like Discord does."""
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed
    if fallback and fallback != "application/octet-stream":
        return fallback
    return "application/octet-stream"


def encode_waveform(waveform: bytes | str | None) -> str | None:
    """Waveforms travel as base64 text (≤256 bytes decoded); bytes are encoded, text kept."""
    if waveform is None or isinstance(waveform, str):
        return waveform
    return base64.b64encode(waveform).decode("ascii")


@dataclass(eq=False)
class Attachment:
    """A file a user attached (to a command option or a message); its bytes are served by the CDN."""

    id: int
    filename: str
    data: bytes
    content_type: str
    url: str
    duration_secs: float | None = None
    waveform: str | None = None
    description: str | None = None
    flags: int = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "flags": self.flags,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.duration_secs is not None:
            data["duration_secs"] = self.duration_secs
        if self.waveform is not None:
            data["waveform"] = self.waveform
        return data


@dataclass(eq=False)
class UploadedFile:
    """A file the bot uploaded (multipart ``files[n]``), exactly as the bytes arrived."""

    filename: str
    data: bytes
    content_type: str
    part_content_type: str
    index: int
    description: str | None = None
    attachment_id: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(eq=False)
class Webhook:
    """A channel webhook (an integration posting as ``name``); its messages' author is ``user``."""

    id: int
    guild_id: int
    channel_id: int
    name: str
    avatar: str | None = None

    @property
    def user(self) -> User:
        # resources/message.mdx: a webhook message's author is the webhook's id, username and avatar.
        return User(id=self.id, username=self.name, bot=True, avatar=self.avatar, discriminator="0000")


@dataclass(eq=False)
class Message:
    """A message stored by the fake (sent by the bot, or planted by a test)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    tts: bool = False
    deleted: bool = False
    mentions: list[User] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    poll: dict[str, Any] | None = None
    reply_to: Message | None = None  # a reply (type 19): ``message_reference`` + ``referenced_message``

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def silent(self) -> bool:
        return bool(self.flags & MessageFlag.SUPPRESS_NOTIFICATIONS)

    def gateway_payload(self, guild: Guild | None, channel_type: int | None = None) -> dict[str, Any]:
        """The MESSAGE_CREATE/UPDATE body: ``channel_type``, the author's member data (never for a
        webhook, events/gateway-events.mdx) and each mentioned user's member data added."""
        data = self.payload()
        if channel_type is not None:
            data["channel_type"] = channel_type
        if guild is None:
            return data
        if self.author.id in guild.members and self.webhook_id is None:
            data["member"] = guild.members[self.author.id].payload(with_user=False)
        for mention in data["mentions"]:
            member = guild.members.get(int(mention["id"]))
            if member is not None:
                mention["member"] = member.payload(with_user=False)
        return data

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": self.type,
            "content": self.content,
            "author": self.author.payload(),
            "embeds": list(self.embeds),
            "components": list(self.components),
            "attachments": [dict(a) for a in self.attachments],
            "flags": self.flags,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": self.tts,
            "mention_everyone": False,
            "mentions": [user.payload() for user in self.mentions],
            "mention_roles": [str(role_id) for role_id in self.mention_roles],
            "pinned": False,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.reply_to is not None:
            # resources/message.mdx: a reply's reference names the message, channel and guild it
            # answers; ``referenced_message`` carries that message (one level: no nested reference)
            data["message_reference"] = {
                "type": 0,
                "message_id": str(self.reply_to.id),
                "channel_id": str(self.reply_to.channel_id),
            }
            if self.reply_to.guild_id is not None:
                data["message_reference"]["guild_id"] = str(self.reply_to.guild_id)
            referenced = self.reply_to.payload()
            referenced.pop("referenced_message", None)
            referenced.pop("message_reference", None)
            data["referenced_message"] = referenced
        if self.poll is not None:
            data["poll"] = self.poll
        return data
