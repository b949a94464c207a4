"""What Discord refuses in the payloads a bot sends: pure functions over the request JSON.

Each check returns None (Discord accepts it) or a :class:`Refusal` shaped as Discord answers:
HTTP 400 code 50035 "Invalid Form Body" with the errors nested by field path
(``{"0": {"options": {"2": {"_errors": [{"code": ..., "message": ...}]}}}}``), or an error code of
its own (50006 empty message, 50159/50160/50161 voice messages, 30032 too many commands).

Limits come from Discord's developer docs (github.com/discord/discord-api-docs, ``developers/``:
``interactions/application-commands.mdx``, ``interactions/receiving-and-responding.mdx``,
``resources/message.mdx``, ``resources/webhook.mdx``, ``components/reference.mdx``,
``topics/opcodes-and-status-codes.mdx``); each constant names its source. The error ``code``
strings inside ``_errors`` are the ones Discord is seen answering where known (e.g.
``APPLICATION_COMMAND_INVALID_NAME``, ``MAX_EMBED_SIZE_EXCEEDED``); the docs do not list them.

Covered: bulk command overwrites (names, descriptions, options, choices, nesting, counts, size),
message bodies on create and edit (content, embeds, attachments, components, empty messages,
Components V2, voice messages), which message flags each route keeps, autocomplete results and
modals. Not covered: polls, stickers and allowed_mentions contents, localisation locale keys,
permissions fields, entry-point (type 4) command details.
"""

from .commands import autocomplete_refusal, command_sync_refusal, is_valid_slash_name
from .form import Refusal
from .messages import (
    CHANNEL_MESSAGE_FLAGS,
    DEFERRED_FLAGS,
    EDIT_FLAGS,
    FOLLOWUP_FLAGS,
    RESPONSE_FLAGS,
    edited_flags,
    kept_flags,
    message_refusal,
    modal_refusal,
)

__all__ = [
    "CHANNEL_MESSAGE_FLAGS",
    "DEFERRED_FLAGS",
    "EDIT_FLAGS",
    "FOLLOWUP_FLAGS",
    "RESPONSE_FLAGS",
    "Refusal",
    "autocomplete_refusal",
    "command_sync_refusal",
    "edited_flags",
    "is_valid_slash_name",
    "kept_flags",
    "message_refusal",
    "modal_refusal",
]
