"""Messages that people, other bots and webhooks post, edit and delete — in text channels, voice
channels' text chats and DMs — and how each reaches the bot: as gateway events and REST reads.

Rules (Discord's docs, ``events/gateway-events.mdx``, ``resources/message.mdx``,
``topics/permissions.mdx``):

* MESSAGE_CREATE and MESSAGE_UPDATE carry the full message plus ``channel_type``, the author's
  ``member`` (not for webhooks) and each mentioned user's ``member``; an update has ``tts`` false;
  MESSAGE_DELETE carries ``id``, ``channel_id`` and ``guild_id`` (none in a DM);
* a guild channel's message events reach the bot only if it may VIEW_CHANNEL there ("which
  includes reading messages"); which sessions get them, and with what content, is the gateway's
  intent filtering (``intents.py``);
* Get Channel Messages returns newest first, 1–100 (default 50), ``before``/``after``/``around``
  exclusive, nothing without READ_MESSAGE_HISTORY.

Not covered: reactions, pins, stickers, threads, bulk deletes, embeds Discord unfurls
from links, MESSAGE_UPDATE for embed unfurls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .models import Attachment, Channel, Member, Message, Perm, User, Webhook
from .state import World
from .util import iso_now

Author = Member | User | Webhook

#: Get Channel Messages: ``limit`` "1-100", default 50.
HISTORY_LIMITS = (1, 100, 50)


def post(
    world: World,
    channel: Channel,
    author: Author,
    content: str = "",
    *,
    attachments: Iterable[tuple[str, bytes] | Attachment] = (),
    embeds: Iterable[dict[str, Any]] = (),
    flags: int = 0,
    poll: tuple[str, Sequence[str]] | None = None,
    reply_to: Message | None = None,
) -> Message:
    """Store a message ``author`` posted in ``channel`` (a reply to ``reply_to``, type 19) and dispatch
    MESSAGE_CREATE."""
    user = _author_user(world, channel, author)
    stored = [
        a if isinstance(a, Attachment) else world.store_attachment(channel.id, a[0], a[1])
        for a in attachments
    ]
    message = Message(
        id=world.snowflake(),
        channel_id=channel.id,
        guild_id=channel.guild_id,
        author=user,
        content=content,
        embeds=list(embeds),
        attachments=[a.payload() for a in stored],
        flags=flags,
        webhook_id=author.id if isinstance(author, Webhook) else None,
        poll=_poll(*poll) if poll is not None else None,
        reply_to=reply_to,
        type=19 if reply_to is not None else 0,
    )
    _mention(world, message)
    if reply_to is not None and all(user.id != reply_to.author.id for user in message.mentions):
        # a reply pings the author it answers (the app's default, "@ON"): they are among its mentions,
        # so a bot without the Message Content intent still sees a reply to its own message
        message.mentions.append(reply_to.author)
    world.messages[message.id] = message
    dispatch(world, "MESSAGE_CREATE", message)
    return message


def edit(
    world: World, message: Message, content: str, *, embeds: Iterable[dict[str, Any]] | None = None
) -> Message:
    """Its author edits ``message``: new content (and embeds), mentions re-read, MESSAGE_UPDATE."""
    if message.deleted:
        raise LookupError(f"message {message.id} was deleted")
    message.content = content
    if embeds is not None:
        message.embeds = list(embeds)
    message.edited_timestamp = iso_now()
    _mention(world, message)
    dispatch(world, "MESSAGE_UPDATE", message)
    return message


def delete(world: World, message: Message) -> None:
    """Delete ``message`` (by its author or a moderator): gone from REST, MESSAGE_DELETE sent."""
    if message.deleted:
        raise LookupError(f"message {message.id} was already deleted")
    message.deleted = True
    if not message.ephemeral and bot_can_read(world, message.channel_id):
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        world.dispatch("MESSAGE_DELETE", data)


def dispatch(world: World, event: str, message: Message) -> None:
    """MESSAGE_CREATE or MESSAGE_UPDATE for ``message``, if the bot can read its channel (never
    for an ephemeral message: only the user it answers sees it)."""
    channel = world.channel(message.channel_id)
    if channel is None or message.ephemeral or not bot_can_read(world, channel.id):
        return
    data = message.gateway_payload(world.guilds.get(channel.guild_id or 0), channel.type)
    if event == "MESSAGE_UPDATE":
        data["tts"] = False  # gateway-events.mdx: "tts will always be false in message updates"
    world.dispatch(event, data)


def bot_can_read(world: World, channel_id: int) -> bool:
    """Whether the bot may VIEW_CHANNEL (read the messages of) this channel; DMs always."""
    channel = world.channel(channel_id)
    if channel is None or channel.guild_id is None:
        return channel is not None
    guild = world.guilds[channel.guild_id]
    return bool(guild.permissions_in(guild.members[world.bot.id], channel) & Perm.VIEW_CHANNEL)


def history(
    world: World,
    channel_id: int,
    *,
    limit: int = HISTORY_LIMITS[2],
    before: int | None = None,
    after: int | None = None,
    around: int | None = None,
) -> list[Message]:
    """Get Channel Messages: up to ``limit`` of the channel's messages, newest first."""
    kept = sorted(
        (
            m
            for m in world.messages.values()
            if m.channel_id == channel_id and not m.deleted and not m.ephemeral
        ),
        key=lambda m: m.id,
        reverse=True,
    )
    if before is not None:
        return [m for m in kept if m.id < before][:limit]
    if after is not None:
        return [m for m in kept if m.id > after][-limit:]
    if around is not None:
        newer = [m for m in kept if m.id > around][::-1][: limit // 2]
        older = [m for m in kept if m.id <= around][: limit - len(newer)]
        return newer[::-1] + older
    return kept[:limit]


def _author_user(world: World, channel: Channel, author: Author) -> User:
    if isinstance(author, Webhook):
        if author.channel_id != channel.id:
            raise ValueError(
                f"webhook {author.name!r} posts in channel {author.channel_id}, not {channel.id}"
            )
        return author.user
    if channel.guild_id is None:
        if channel.recipient is None or channel.recipient.id != author.id:
            raise ValueError(f"{author.name} is not in this DM")
        return author.user if isinstance(author, Member) else author
    if not isinstance(author, Member) or author.guild_id != channel.guild_id:
        raise ValueError(f"{author.name} is not a member of the channel's guild")
    return author.user


def _mention(world: World, message: Message) -> None:
    """Who the content mentions: members of the guild and its roles (users in a DM)."""
    if message.guild_id is None:
        message.mentions, message.mention_roles = world.users_mentioned(message.content), []
    else:
        guild = world.guilds[message.guild_id]
        message.mentions, message.mention_roles = world.mentioned_in(guild, message.content)


def _poll(question: str, answers: Sequence[str]) -> dict[str, Any]:
    """A poll object as Discord sends it (resources/poll.mdx), open for 24 hours, no votes yet."""
    expiry = datetime.now(UTC) + timedelta(hours=24)
    return {
        "question": {"text": question},
        "answers": [{"answer_id": i, "poll_media": {"text": text}} for i, text in enumerate(answers, 1)],
        "expiry": expiry.isoformat(),
        "allow_multiselect": False,
        "layout_type": 1,
        "results": {"is_finalized": False, "answer_counts": []},
    }
