"""The speaker's own consent on Discord: the request a pending voice posts, the speaker's voice message
that answers it, the Decline button, and expiry.

The request is a public reply in the channel where the voice was cloned, mentioning the speaker. The
speaker agrees by replying with a Discord voice message (recorded live in the app) reading the sentence
shown; typed text or an uploaded file is refused with a note saying why. `bot.consent` decides; this cog
only carries it out on Discord. Ordinary chat is never looked at beyond one set lookup: only members with
a pending request in that server are listened to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, cast

import discord
from discord.ext import commands

from bot import consent, replies
from bot.errors import ConsentNeedsVoiceMessage, FileTooLarge, VoiceBotError
from bot.store import Voice
from bot.store.consents import PendingConsent
from cogs.common import bot_of, custom_id_of

if TYPE_CHECKING:
    from bot.client import VoiceBot

log = logging.getLogger(__name__)

DECLINE_PREFIX = "consent-decline:"
# A request not posted this long after its end (a crash while posting) ends without telling anyone.
UNPOSTED_GRACE_S = 600.0
MENTION_BOTH = discord.AllowedMentions(users=True, roles=False, everyone=False)


def request_text(voice: Voice, ask: consent.ConsentAsk, requester_id: int, ends: int) -> str:
    who = (
        f"<@{ask.speaker_id}>, to finish cloning your voice as **{voice.name}**"
        if ask.speaker_id == requester_id
        else f"<@{ask.speaker_id}>, <@{requester_id}> would like to clone your voice as **{voice.name}**. "
        "Voices here are only made with the speaker's own consent. If you agree"
    )
    return (
        f"🎙️ {who}, **reply to this message with a voice message** (hold the microphone button in the "
        f"Discord app) reading:\n> {ask.sentence}\n"
        f"Otherwise press Decline, or ignore this: the request and the recording are deleted "
        f"<t:{ends}:R>."
    )


class DeclineButton(discord.ui.View):
    """Only the look: presses come to `Consent.on_interaction` (a restart must not break old requests)."""

    def __init__(self, voice_id: str) -> None:
        super().__init__(timeout=None)
        self.add_item(
            discord.ui.Button(
                label="Decline", style=discord.ButtonStyle.secondary, custom_id=f"{DECLINE_PREFIX}{voice_id}"
            )
        )
        self.stop()  # kept out of discord.py's view store: the listener answers


async def post_request(
    interaction: discord.Interaction, voice: Voice, ask: consent.ConsentAsk, ends: int
) -> discord.Message | None:
    """Post the public request after a pending clone and remember where it went."""
    bot = bot_of(interaction)
    # By name: discord.py loads each extension as a module of its own, so this module's Consent class
    # need not be the loaded cog's. Listening starts before the request is out, so no answer is missed.
    expect = getattr(bot.get_cog("Consent"), "expect", None)
    if expect is not None:
        expect(voice.guild_id, ask.speaker_id)
    message = await interaction.followup.send(
        request_text(voice, ask, interaction.user.id, ends),
        view=DeclineButton(voice.id),
        allowed_mentions=MENTION_BOTH,
        wait=True,
    )
    await bot.store.aio.posted_consent_request(voice.id, message.channel.id, message.id)
    return message


class Consent(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = cast("VoiceBot", bot)
        self.waiting: set[tuple[int, int]] = set()  # (guild, speaker) with a pending request
        self._wake = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._expiry = asyncio.create_task(self._expire_forever(), name="voicebot-consent-expiry")

    async def cog_unload(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    def expect(self, guild_id: int, speaker_id: int) -> None:
        self.waiting.add((guild_id, speaker_id))
        self._wake.set()  # the new request may expire before the next planned look

    # --- the speaker's answer ---------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or message.author.bot:
            return
        if (message.guild.id, message.author.id) not in self.waiting:
            return
        try:
            await self._answer(message)
        except VoiceBotError as error:
            await self._reply(message, error.message)
        except Exception as error:
            await self._reply(message, replies.message_for(error))

    async def _answer(self, message: discord.Message) -> None:
        assert message.guild is not None
        store = self.bot.store
        config = self.bot.config
        key = (message.guild.id, message.author.id)
        pending = await store.aio.pending_consents(guild_id=key[0], speaker_id=key[1])
        if not pending:
            self.waiting.discard(key)
            return
        reply_to = message.reference.message_id if message.reference is not None else None
        if not message.flags.voice:
            if reply_to is not None and any(p.message_id == reply_to for p in pending):
                raise ConsentNeedsVoiceMessage("an uploaded file" if message.attachments else "typed text")
            return  # ordinary chat
        request = consent.request_for(pending, reply_to)
        if request is None or not message.attachments:
            return
        attachment = message.attachments[0]
        if attachment.size > config.max_reference_bytes:
            raise FileTooLarge(attachment.size, config.max_reference_bytes)
        data = await attachment.read()
        checked = await consent.check_voice_message(
            store,
            self.bot.backend,
            request,
            data,
            max_bytes=config.max_reference_bytes,
            threshold=config.consent_threshold,
            tries=config.consent_tries,
        )
        if checked.voice is not None:
            done = (
                f"✅ Thank you, <@{request.speaker_id}>: “{checked.voice.name}” can speak now. "
                f"<@{request.requested_by}>, try it with `/say voice:{checked.voice.name}`."
            )
            await self._reply(message, done, mention=True)
            await self._close_request(
                request, f"✅ <@{request.speaker_id}> agreed: “{checked.voice.name}” is ready."
            )
        else:
            assert checked.error is not None
            await self._reply(message, checked.error.message)
            if checked.closed:
                await self._close_request(
                    request, "❌ Closed after too many voice messages that didn't match."
                )
        if checked.voice is not None or checked.closed:
            if not await store.aio.pending_consents(guild_id=key[0], speaker_id=key[1]):
                self.waiting.discard(key)

    async def _reply(self, message: discord.Message, text: str, *, mention: bool = False) -> None:
        with contextlib.suppress(discord.HTTPException):
            allowed = MENTION_BOTH if mention else discord.AllowedMentions.none()
            await message.reply(text, mention_author=mention, allowed_mentions=allowed)

    async def _close_request(self, request: PendingConsent, text: str) -> None:
        """Replace the request's text (and its button) with how it ended."""
        if request.channel_id is None or request.message_id is None:
            return
        channel = self.bot.get_partial_messageable(request.channel_id)
        with contextlib.suppress(discord.HTTPException):
            await channel.get_partial_message(request.message_id).edit(content=text, view=None)

    # --- Decline ----------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        custom_id = custom_id_of(interaction, discord.InteractionType.component, DECLINE_PREFIX)
        if custom_id is None:
            return
        try:
            await self._decline(interaction, custom_id.removeprefix(DECLINE_PREFIX))
        except Exception as error:
            await replies.report(interaction, error)

    async def _decline(self, interaction: discord.Interaction, voice_id: str) -> None:
        store = bot_of(interaction).store
        request = await store.aio.pending_consent(voice_id)
        if request is None:
            await interaction.response.send_message("That request has ended already.", ephemeral=True)
            return
        if interaction.user.id not in (request.speaker_id, request.requested_by):
            await interaction.response.send_message(
                f"Only <@{request.speaker_id}> (or <@{request.requested_by}>, who asked) can decline this.",
                ephemeral=True,
            )
            return
        voice = await consent.withdraw(store, request, reason="declined")
        name = f"“{voice.name}”" if voice else "the voice"
        who = "declined" if interaction.user.id == request.speaker_id else "was withdrawn by who asked"
        await interaction.response.edit_message(
            content=f"❌ The request to clone <@{request.speaker_id}>'s voice as {name} {who}; "
            "the recording was deleted.",
            view=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    # --- expiry -----------------------------------------------------------------------------------

    async def _expire_forever(self) -> None:
        await self.bot.wait_until_ready()
        store = self.bot.store
        with contextlib.suppress(Exception):
            pending = await store.aio.pending_consents()
            self.waiting |= {(p.guild_id, p.speaker_id) for p in pending}
        while True:
            try:
                await self.expire_due()
                soonest = await store.aio.next_consent_expiry()
            except Exception:
                log.exception("Could not expire consent requests; trying again in a minute")
                soonest = None
            delay = 60.0 if soonest is None else min(60.0, max(1.0, soonest - time.time()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def expire_due(self) -> int:
        """End every request past its time in this process's servers; how many ended."""
        store = self.bot.store
        ended = 0
        for request in await store.aio.expired_consents():
            if not self.bot.owns_guild(request.guild_id):
                continue
            if request.message_id is None and time.time() < request.expires_at + UNPOSTED_GRACE_S:
                continue  # being posted right now (a short expiry): it ends once both can be told
            voice = await consent.withdraw(store, request, reason="expired")
            ended += 1
            name = f"“{voice.name}”" if voice else "a voice"
            await self._close_request(request, f"⌛ This request expired: {name} was not made.")
            if request.channel_id is not None:
                channel = self.bot.get_partial_messageable(request.channel_id)
                with contextlib.suppress(discord.HTTPException):
                    await channel.send(
                        f"⌛ <@{request.requested_by}>, <@{request.speaker_id}>: the request to clone "
                        f"<@{request.speaker_id}>'s voice as {name} expired without their consent, so the "
                        "voice and its recording were deleted.",
                        allowed_mentions=MENTION_BOTH,
                    )
            if not await store.aio.pending_consents(guild_id=request.guild_id, speaker_id=request.speaker_id):
                self.waiting.discard((request.guild_id, request.speaker_id))
        return ended


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Consent(bot))
