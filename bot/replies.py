"""Answering an interaction in whatever state it is in, and turning any failure into one short message.

This is the one place where exceptions become what a Discord user reads: `VoiceBotError.message` as is,
discord.py's permission/cooldown checks in plain words, and anything unexpected as a generic apology
(the traceback goes to the log, never to Discord).
"""

from __future__ import annotations

import errno
import logging
from typing import cast

import discord
from discord import app_commands

from bot.errors import BackendError, DiskFull, LibraryError, VoiceBotError

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on my side; it has been logged. Please try again."


# The names Discord's own settings screens use, where the API's differ.
_PERMISSION_NAMES = {"manage_guild": "Manage Server", "use_voice_activation": "Use Voice Activity"}


def _permission_name(permission: str) -> str:
    return _PERMISSION_NAMES.get(permission, permission.replace("_", " ").title())


def message_for(error: BaseException) -> str:
    if isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        error = cast(BaseException, error.__cause__ or getattr(error, "original", error))
    if isinstance(error, BackendError):
        log.warning("Speech backend: %s (%s)", type(error).__name__, getattr(error, "detail", ""))
        return error.message
    if isinstance(error, LibraryError):  # the member is told briefly; the admin's line goes to the log
        log.error("Voice library: %s", error.admin_message)
        return error.message
    if isinstance(error, VoiceBotError):
        return error.message
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        log.error("Disk full", exc_info=error)
        return DiskFull().message
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(_permission_name(p) for p in error.missing_permissions)
        return f"You need the {needed} permission for that."
    if isinstance(error, app_commands.BotMissingPermissions):
        needed = ", ".join(_permission_name(p) for p in error.missing_permissions)
        return f"I need the {needed} permission here for that. Ask an admin to grant it."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "Use this command in a server, not in DMs."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use that command here."
    log.error("Unexpected error in a command", exc_info=error)
    return UNEXPECTED


async def tell(interaction: discord.Interaction, message: str, *, ephemeral: bool = True) -> None:
    """Say `message` privately (by default), whether or not the interaction was answered yet."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=ephemeral)
            return
        original = None
        try:
            original = await interaction.original_response()
        except discord.HTTPException:
            pass
        if original is not None and (original.flags.ephemeral or not ephemeral):
            # Our own deferred reply is private already: the error replaces "thinking…".
            await interaction.edit_original_response(content=message, embed=None, attachments=[], view=None)
        else:
            # A public "thinking…" must not turn into a public error. Edit it first (after an edit,
            # follow-ups are messages of their own, not the deferred one), answer privately, then
            # remove it.
            await interaction.edit_original_response(content="…")
            await interaction.followup.send(message, ephemeral=ephemeral)
            await interaction.delete_original_response()
    except discord.HTTPException:
        log.warning("Could not deliver a reply to interaction %s", interaction.id, exc_info=True)


async def report(interaction: discord.Interaction, error: BaseException) -> None:
    await tell(interaction, message_for(error), ephemeral=True)
