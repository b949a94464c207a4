"""Gateway intents as Discord enforces them: which events a session gets, which privileged intents
the application has switched on in the Developer Portal, and what the Message Content intent hides.

Rules, from Discord's docs (``events/gateway.mdx``, ``resources/application.mdx``,
``resources/message.mdx``, ``events/gateway-events.mdx``):

* MESSAGE_CREATE/UPDATE/DELETE need GUILD_MESSAGES in a guild and DIRECT_MESSAGES in a DM;
* GUILD_MEMBERS, GUILD_PRESENCES and MESSAGE_CONTENT are privileged: an IDENTIFY asking for one the
  application has not enabled is closed with 4014 "Disallowed intent(s)";
* the application object's ``flags`` say which are enabled: the ``*_LIMITED`` bits, the ones an app
  in under 100 servers toggles on the Bot page (the fake never models a verified app);
* without MESSAGE_CONTENT a message's ``content``, ``embeds``, ``attachments`` and ``components``
  are empty and ``poll`` is left out — except the app's own messages, DMs with the app, and
  messages that mention it. Over the gateway the session must have asked for the intent; over
  REST only the Portal setting counts ("HTTP API restrictions are independent of Gateway
  restrictions"). Message context-menu targets always carry content (``interactions.py``).

Not covered: 4013 for undefined intent bits, verified apps (the non-limited flags),
mentions of the bot through its managed role (a reply that pings the bot is a mention: ``messages``).
"""

from __future__ import annotations

from enum import IntFlag
from typing import Any


class Intent(IntFlag):
    """Gateway intent bits the fake interprets (events/gateway.mdx, "List of Intents")."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_WEBHOOKS = 1 << 5
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


#: Intents an app must enable in the Developer Portal before it may IDENTIFY with them.
PRIVILEGED = Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT


class ApplicationFlag(IntFlag):
    """Application ``flags`` bits for privileged intents (resources/application.mdx)."""

    GATEWAY_PRESENCE = 1 << 12
    GATEWAY_PRESENCE_LIMITED = 1 << 13
    GATEWAY_GUILD_MEMBERS = 1 << 14
    GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 15
    GATEWAY_MESSAGE_CONTENT = 1 << 18
    GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19


_PORTAL_FLAGS = {
    Intent.GUILD_PRESENCES: ApplicationFlag.GATEWAY_PRESENCE_LIMITED,
    Intent.GUILD_MEMBERS: ApplicationFlag.GATEWAY_GUILD_MEMBERS_LIMITED,
    Intent.MESSAGE_CONTENT: ApplicationFlag.GATEWAY_MESSAGE_CONTENT_LIMITED,
}

#: Dispatches that Discord only sends with an intent (MESSAGE_* depend on guild or DM: below).
_EVENT_INTENTS = {
    "GUILD_CREATE": Intent.GUILDS,
    "GUILD_MEMBER_ADD": Intent.GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": Intent.GUILD_MEMBERS,
    "VOICE_STATE_UPDATE": Intent.GUILD_VOICE_STATES,
    "WEBHOOKS_UPDATE": Intent.GUILD_WEBHOOKS,
}
_MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"})
_CONTENT_FIELDS = ("content", "embeds", "attachments", "components")


def intents_value(value: Any) -> int:
    """An int from an int, an ``Intent``, or anything with ``.value`` (``discord.Intents``)."""
    return int(getattr(value, "value", value))


def application_flags(enabled: int) -> int:
    """The application ``flags`` that report these privileged intents as enabled in the Portal."""
    return int(sum(flag for intent, flag in _PORTAL_FLAGS.items() if enabled & intent))


def disallowed(requested: int, enabled: int) -> int:
    """The privileged intents an IDENTIFY asks for that the app has not enabled (→ close 4014)."""
    return requested & PRIVILEGED & ~enabled


def event_intent(event: str, data: dict[str, Any]) -> int | None:
    """The intent a session needs to receive this dispatch (None: every session gets it)."""
    if event in _MESSAGE_EVENTS:
        return Intent.GUILD_MESSAGES if data.get("guild_id") else Intent.DIRECT_MESSAGES
    return _EVENT_INTENTS.get(event)


def content_exempt(message: dict[str, Any], application_id: int) -> bool:
    """Whether the app sees this message's content without MESSAGE_CONTENT: it sent it, it is a
    DM, or it mentions the app's bot user (whose id is the application id)."""
    app = str(application_id)
    return (
        message["author"]["id"] == app
        or message.get("application_id") == app
        or not message.get("guild_id")
        or any(user["id"] == app for user in message.get("mentions", ()))
    )


def visible_message(message: dict[str, Any], application_id: int, *, content_intent: bool) -> dict[str, Any]:
    """A message payload as the app receives it: content fields emptied and ``poll`` left out
    unless it has the Message Content intent or the message is exempt (resources/message.mdx)."""
    if content_intent or content_exempt(message, application_id):
        return message
    hidden = {key: value for key, value in message.items() if key != "poll"}
    hidden["content"] = ""
    hidden.update({key: [] for key in _CONTENT_FIELDS[1:]})
    return hidden
