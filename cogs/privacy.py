"""A member's own data: /forget me (everything about them, in every server, after a confirmation) and
/myvoices (the voices they own or that are of them, wherever they are, each theirs to delete).

Both work in servers and in DMs, and answer privately. /myvoices lists voices in every server the
library holds them for, those the member or the bot has left included: a member who left a server can
still delete the voice of them kept there.
"""

from __future__ import annotations

import logging
from datetime import datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot import audit, replies
from bot.errors import ConfirmationExpired, NotYourConfirmation, NotYourVoice
from bot.store import Voice
from bot.store.privacy import ForgetReport
from bot.wording import plural
from cogs.common import bot_of

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 120.0
# What a forget can't reach, as a member reads it (the CLI words it for the operator: bot.cli.privacy).
EARLIER_COPIES = (
    "Copies made before now still hold what they held: voice archives a server's admins exported, and "
    "backups of the bot's data. Ask the bot's operator to delete those too."
)
MAX_LINES = 40  # of a list in one message; the rest is counted


def server_name(bot: discord.Client, guild_id: int) -> str:
    guild = bot.get_guild(guild_id)
    return guild.name if guild is not None else f"server {guild_id} (the bot isn't there now)"


def _unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def role_of(voice: Voice, user_id: int) -> str:
    roles = []
    if voice.owner_id == user_id:
        roles.append("yours")
    if voice.speaker_id == user_id:
        roles.append("of you")
    if not roles:
        roles.append("your consent")
    if voice.pending:
        roles.append("waiting for consent")
    return ", ".join(roles)


def _capped(lines: list[str]) -> str:
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more"]
    return "\n".join(lines)


def forget_summary(bot: discord.Client, report: ForgetReport, *, done: bool) -> str:
    """What a forget removes (before) or removed (after), in a member's words."""
    head = "Deleted everything the bot stored about you:" if done else "This deletes, in every server:"
    lines = [head]
    if report.voice_count:
        lines.append(f"• {plural(report.voice_count, 'voice')} with their recordings:")
        for guild_id, names in sorted(report.voices.items()):
            lines.append(f"  – {server_name(bot, guild_id)}: {', '.join(f'“{n}”' for n in sorted(names))}")
    lines += [f"• {count} {kind}" for kind, count in report.rows.items() if count]
    return _capped(lines)


class ConfirmForget(discord.ui.View):
    """Confirm / Cancel for the member who asked, for CONFIRM_TIMEOUT_S."""

    def __init__(self, asker: discord.Interaction, report: ForgetReport) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_S)
        self.asker, self.report = asker, report

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.asker.user.id:
            await replies.report(interaction, NotYourConfirmation())
            return False
        return True

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmForget]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Deleting…", view=None)
        user_id = interaction.user.id
        report = await bot_of(interaction).store.aio.forget_user(user_id, requested_by=user_id)
        if report:
            text = f"{forget_summary(interaction.client, report, done=True)}\n\n{EARLIER_COPIES}"
        else:
            text = f"Nothing was stored about you any more.\n\n{EARLIER_COPIES}"
        await interaction.edit_original_response(content=text, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmForget]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Cancelled: nothing was deleted.", view=None)

    async def on_timeout(self) -> None:
        try:
            await self.asker.edit_original_response(content=ConfirmationExpired().message, view=None)
        except discord.HTTPException:  # the interaction's 15 minutes are over, or the message is gone
            pass

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[ConfirmForget]
    ) -> None:
        await replies.report(interaction, error)


async def my_voice_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The member's own voices, in every server, as "Ada — Server"; the value is the voice's id."""
    voices = await bot_of(interaction).store.aio.voices_of_member(interaction.user.id)
    wanted = current.casefold().strip()
    choices = []
    for voice in voices:
        label = f"{voice.name} — {server_name(interaction.client, voice.guild_id)}"
        if wanted in label.casefold():
            choices.append(app_commands.Choice(name=label[:100], value=voice.id))
    return choices[:25]


class Privacy(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    forget = app_commands.Group(name="forget", description="Delete what the bot stores about you")

    @forget.command(name="me", description="Delete everything the bot stores about you, in every server.")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        user_id = interaction.user.id
        preview = await bot_of(interaction).store.aio.forget_user(user_id, requested_by=user_id, dry_run=True)
        if not preview:
            await interaction.edit_original_response(content="The bot stores nothing about you.")
            return
        text = (
            f"{forget_summary(self.bot, preview, done=False)}\n\nThis can't be undone. "
            f"The buttons work for {CONFIRM_TIMEOUT_S / 60:.0f} minutes."
        )
        await interaction.edit_original_response(content=text, view=ConfirmForget(interaction, preview))

    @app_commands.command(
        name="myvoices", description="The voices you own or that are of you, in every server; delete any."
    )
    @app_commands.describe(delete="A voice of yours to delete (its recording and voice data)")
    @app_commands.autocomplete(delete=my_voice_choices)
    async def myvoices(self, interaction: discord.Interaction, delete: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = bot_of(interaction).store
        user_id = interaction.user.id
        voices = await store.aio.voices_of_member(user_id)
        if delete is not None:
            voice = self._pick(voices, delete)
            await store.aio.delete(voice.guild_id, voice.id)
            audit.record(
                "delete", actor=user_id, guild=voice.guild_id, voice=voice.id, name=voice.name, via="myvoices"
            )
            where = server_name(self.bot, voice.guild_id)
            await interaction.edit_original_response(
                content=f"Deleted “{voice.name}” from {where}: its recording and voice data are gone."
            )
            return
        if not voices:
            await interaction.edit_original_response(
                content="No server has a voice of yours or of you. (/forget me deletes everything else.)"
            )
            return
        lines = []
        for voice in voices:
            where = server_name(self.bot, voice.guild_id)
            lines.append(
                f"**{voice.name}** · {where} · {role_of(voice, user_id)} · "
                f"created <t:{_unix(voice.created_at)}:D>"
            )
        embed = discord.Embed(
            title="Your voices", colour=discord.Colour.blurple(), description=_capped(lines)
        )
        embed.set_footer(text=f"{plural(len(voices), 'voice')} · delete one with /myvoices delete:")
        await interaction.edit_original_response(embed=embed)

    @staticmethod
    def _pick(voices: list[Voice], wanted: str) -> Voice:
        """The member's voice by id (what autocomplete sends), or by a name only one of theirs has."""
        by_id = [v for v in voices if v.id == wanted.strip()]
        named = [v for v in voices if v.name.casefold() == wanted.strip().casefold()]
        found = by_id or named
        if len(found) != 1:
            raise NotYourVoice(wanted.strip()[:40])
        return found[0]


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Privacy(bot))
