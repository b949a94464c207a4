"""Cloning voices from Discord: /clone, and the message context menu "Clone voice from message".

Consent is asked every time and recorded with the voice (who confirmed it, when). Where the server
requires the speaker's own consent (the default), the voice is kept pending and its speaker is asked to
agree with a voice message (bot.consent, cogs/consent.py); a member's own voice message needs no more.
The upload's size is checked from the attachment's metadata before anything is downloaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import cloning, consent, replies
from bot.errors import (
    ConsentRequired,
    DownloadFailed,
    FormExpired,
    NoAudioAttachment,
    NotAllowedToClone,
    NotYourForm,
    SpeakerNotAMember,
)
from cogs.common import bot_of, custom_id_of, first_audio, guild_id_of
from cogs.consent import post_request
from cogs.voices import voice_card

STEPS = {"checking": "Checking the audio…", "encoding": "Learning the voice…"}


def audio_attachment(message: discord.Message) -> discord.Attachment:
    attachment = first_audio(message)
    if attachment is None:
        raise NoAudioAttachment()
    return attachment


async def _check_may_clone(interaction: discord.Interaction) -> None:
    settings = await bot_of(interaction).store.aio.settings(guild_id_of(interaction))
    if settings.clone_role_id is None:
        return
    member = interaction.user
    if not isinstance(member, discord.Member):  # commands are guild-only: a member always
        raise NotAllowedToClone("chosen")
    roles = {role.id for role in member.roles}
    if settings.clone_role_id not in roles and not member.guild_permissions.manage_guild:
        role = interaction.guild.get_role(settings.clone_role_id) if interaction.guild else None
        raise NotAllowedToClone(f"@{role.name}" if role else "chosen")


async def clone_from(
    interaction: discord.Interaction,
    attachment: discord.Attachment,
    name: str,
    *,
    source: str,
    speaker: discord.Member | discord.User | None = None,
    own_voice_message: bool = False,
) -> None:
    """The whole flow, for /clone and the context menu alike. `speaker`: whose voice it is (default:
    the member cloning); `own_voice_message`: the clip is their own voice message, recorded live in the
    app, so they are its speaker already (bot.consent)."""
    bot = bot_of(interaction)
    guild_id = guild_id_of(interaction)
    await _check_may_clone(interaction)
    settings = await bot.store.aio.settings(guild_id)
    ask = None
    speaker_id = speaker.id if speaker is not None else None
    if consent.needs_consent(settings, own_voice_message=own_voice_message):
        # A /clone option is a member; a message's author (the menu) posted here, member or not cached.
        speaker = speaker or interaction.user
        if speaker.bot:
            raise SpeakerNotAMember()
        bot_name = bot.user.display_name if bot.user else "this bot"
        server = interaction.guild.name if interaction.guild else "this server"
        ask = consent.ask(
            speaker.id, bot_name=bot_name, server_name=server, expiry_hours=bot.config.consent_expiry_hours
        )
    # Refuse before downloading: bad/taken name, full library, or a file over the size cap.
    await asyncio.to_thread(
        cloning.check_upload, bot.store, guild_id, name, attachment.size, bot.config.max_reference_bytes
    )
    await interaction.response.defer(ephemeral=True, thinking=True)
    await interaction.edit_original_response(content="Downloading the recording…")
    try:
        data = await attachment.read()
    except discord.HTTPException as exc:
        raise DownloadFailed(exc.status) from exc

    async def progress(step: str) -> None:
        await interaction.edit_original_response(content=STEPS[step])

    cloned = await cloning.clone_voice(
        bot.store,
        bot.backend,
        data,
        guild_id=guild_id,
        name=name,
        owner_id=interaction.user.id,
        consent_by=interaction.user.id,
        source=source,
        max_bytes=bot.config.max_reference_bytes,
        progress=progress,
        speaker_id=speaker_id,
        consent_ask=ask,
    )
    if ask is None:
        await interaction.edit_original_response(
            content=f"Cloned from {cloned.format}. Try it: `/say voice:{cloned.voice.name} text:Hello!`",
            embed=voice_card(cloned.voice, title=f"🎙️ New voice: {cloned.voice.name}"),
        )
        return
    ends = int(cloned.consent_until or time.time() + ask.expires_in_s)
    who = "you confirm" if ask.speaker_id == interaction.user.id else f"<@{ask.speaker_id}> agrees"
    await interaction.edit_original_response(
        content=f"Saved from {cloned.format}. It can speak once {who} with a voice message: the request is "
        f"below, and ends <t:{ends}:R>.",
        embed=voice_card(cloned.voice, title=f"⏳ Waiting for consent: {cloned.voice.name}"),
    )
    await post_request(interaction, cloned.voice, ask, ends)


FORM_PREFIX = "clone-voice:"
FORM_TIMEOUT_S = 600.0  # how long Discord users expect a form to stay usable


@dataclass(frozen=True)
class OpenForm:
    """A "Clone voice from message" form on someone's screen: what it will clone, and for whom."""

    user_id: int
    guild_id: int
    attachment: discord.Attachment
    message_id: int
    expires_at: float  # time.monotonic()
    speaker_id: int | None = None  # the voice message's author: whose voice it is
    speaker: discord.Member | discord.User | None = None
    voice_message: bool = False  # recorded live in the app (not an uploaded file)


class OpenForms:
    """Every form gets its own custom_id, bound to the invocation that opened it.

    discord.py keeps only the newest modal per custom_id, so one shared id let one member's submit run
    on another member's (even another server's) recording. Forms are kept here instead, and a submit
    we don't know (expired, already sent, from before a restart) is answered, not dropped.
    """

    def __init__(self, timeout_s: float = FORM_TIMEOUT_S, clock: Callable[[], float] = time.monotonic):
        self.timeout_s, self._clock = timeout_s, clock
        self._open: dict[str, OpenForm] = {}

    def __len__(self) -> int:
        return len(self._open)

    def open(
        self,
        invocation_id: int,
        *,
        user_id: int,
        guild_id: int,
        attachment: discord.Attachment,
        message_id: int,
        speaker_id: int | None = None,
        speaker: discord.Member | discord.User | None = None,
        voice_message: bool = False,
    ) -> str:
        now = self._clock()
        self._open = {key: form for key, form in self._open.items() if form.expires_at > now}
        custom_id = f"{FORM_PREFIX}{invocation_id}"
        self._open[custom_id] = OpenForm(
            user_id,
            guild_id,
            attachment,
            message_id,
            now + self.timeout_s,
            speaker_id,
            speaker,
            voice_message,
        )
        return custom_id

    def take(self, custom_id: str, *, user_id: int, guild_id: int | None) -> OpenForm:
        """The form for this submit, once; someone else's form is refused and stays open for its owner."""
        form = self._open.get(custom_id)
        if form is None or form.expires_at <= self._clock():
            self._open.pop(custom_id, None)
            raise FormExpired()
        if (form.user_id, form.guild_id) != (user_id, guild_id):
            raise NotYourForm()
        del self._open[custom_id]
        return form


def form_values(data: Mapping[str, Any]) -> dict[str, str]:
    """Text inputs of a modal submit by custom_id, in action rows or labels alike."""
    values: dict[str, str] = {}
    pending = list(data.get("components", []))
    while pending:
        component = pending.pop()
        pending.extend(component.get("components", []))
        if "component" in component:
            pending.append(component["component"])
        if "custom_id" in component and "value" in component:
            values[component["custom_id"]] = str(component["value"])
    return values


class CloneModal(discord.ui.Modal, title="Clone this voice"):
    """Only the form's look: submits are handled by `Clone.on_interaction` through `OpenForms`."""

    name: discord.ui.TextInput[CloneModal] = discord.ui.TextInput(
        label="Name for the voice",
        custom_id="name",
        min_length=1,
        max_length=32,
        placeholder="Letters, digits, spaces, - or _",
    )
    consent: discord.ui.TextInput[CloneModal] = discord.ui.TextInput(
        label="I have this speaker's permission (type YES)",
        custom_id="consent",
        min_length=1,
        max_length=3,
        placeholder="YES",
    )

    def __init__(self, custom_id: str) -> None:
        super().__init__(timeout=None, custom_id=custom_id)


class Clone(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.forms = OpenForms()
        self.from_message = app_commands.ContextMenu(
            name="Clone voice from message", callback=self.clone_from_message
        )
        self.from_message.guild_only = True
        bot.tree.add_command(self.from_message)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.from_message.name, type=self.from_message.type)

    @app_commands.command(name="clone", description="Clone a voice from a recording of someone speaking.")
    @app_commands.describe(
        name="What to call the voice (1–32 letters, digits, spaces, - or _)",
        attachment="5 s to 5 min of one person speaking: a voice message or an audio file",
        consent="I have this speaker's permission to clone their voice",
        speaker="Whose voice it is (default: yours); they confirm with a voice message",
    )
    @app_commands.guild_only()
    async def clone(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 32],
        attachment: discord.Attachment,
        consent: bool,
        speaker: discord.Member | None = None,
    ) -> None:
        if not consent:
            raise ConsentRequired()
        await clone_from(
            interaction, attachment, name, source=f"attachment:{attachment.filename}", speaker=speaker
        )

    async def clone_from_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        guild_id = guild_id_of(interaction)
        attachment = audio_attachment(message)
        await _check_may_clone(interaction)
        custom_id = self.forms.open(
            interaction.id,
            user_id=interaction.user.id,
            guild_id=guild_id,
            attachment=attachment,
            message_id=message.id,
            speaker_id=message.author.id,
            speaker=message.author,
            voice_message=message.flags.voice,
        )
        modal = CloneModal(custom_id)
        modal.stop()  # a stopped modal stays out of discord.py's store: its submit comes to on_interaction
        await interaction.response.send_modal(modal)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        custom_id = custom_id_of(interaction, discord.InteractionType.modal_submit, FORM_PREFIX)
        if custom_id is None:
            return
        data: Mapping[str, Any] = interaction.data or {}
        try:
            form = self.forms.take(custom_id, user_id=interaction.user.id, guild_id=interaction.guild_id)
            values = form_values(data)
            if values.get("consent", "").strip().casefold() != "yes":
                raise ConsentRequired()
            await clone_from(
                interaction,
                form.attachment,
                values.get("name", ""),
                source=f"message:{form.message_id}",
                speaker=form.speaker,
                own_voice_message=form.voice_message and form.speaker_id == interaction.user.id,
            )
        except Exception as error:
            await replies.report(interaction, error)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Clone(bot))
