"""A loopback fake of Discord for end-to-end tests of a discord.py 2.7 bot.

It speaks Discord's real wire protocols on 127.0.0.1 so the real, unmodified discord.py client
runs against it: REST API v10 (``rest.py``), gateway v10 (``gateway.py``), voice gateway v8 over
TLS plus RTP/UDP with ``aead_xchacha20_poly1305_rtpsize`` (``voice.py``), end-to-end encrypted with
DAVE as Discord requires (``dave.py``, ``mls.py``). Tests build a world
(guilds, members, channels), drive interactions as a user would (slash commands with options and
attachments, autocomplete, context menus, buttons, modals) and assert what the bot did: callbacks,
edits, follow-ups, uploaded bytes, and the decoded audio it played.

Each module's docstring lists which parts of the protocol it covers and which it does not.

Entry points:

* :class:`FakeDiscord` — start/stop, world building, messages (members, bots, webhooks, DMs;
  edits, deletes), privileged intents, sharding (``fake.sharding``, ``add_guild(shard=...)``,
  ``fake.identifies``), interactions, voice, faults;
* :class:`Intent` — gateway intent bits, for ``FakeDiscord(privileged_intents=...)``;
* :class:`InteractionRecord` / :class:`Reply` — what the bot answered;
* :mod:`tests.fakediscord.audio` — Opus packets, an ``AudioSource`` and signal alignment;
* :mod:`tests.fakediscord.limits` — what Discord refuses (commands, messages, embeds, components,
  modals, voice messages), as pure functions over the JSON each route receives;
* :func:`point_discord_py_at` — the two discord.py class attributes the fake patches.
"""

from .dave import DaveCall, DaveMember, Transition
from .discordpy import point_discord_py_at
from .faults import Fault
from .intents import ApplicationFlag, Intent
from .interactions import CallbackType, InteractionRecord, InteractionType, Reply
from .models import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    MessageFlag,
    Overwrite,
    Perm,
    Role,
    UploadedFile,
    User,
    Webhook,
)
from .server import FakeDiscord
from .voice import VoicePacket, VoiceSession

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "ApplicationFlag",
    "Attachment",
    "CallbackType",
    "Channel",
    "DaveCall",
    "DaveMember",
    "FakeDiscord",
    "Fault",
    "Guild",
    "Intent",
    "InteractionRecord",
    "InteractionType",
    "Member",
    "Message",
    "MessageFlag",
    "Overwrite",
    "Perm",
    "Reply",
    "Role",
    "Transition",
    "UploadedFile",
    "User",
    "VoicePacket",
    "VoiceSession",
    "Webhook",
    "point_discord_py_at",
]
