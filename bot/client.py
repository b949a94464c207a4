"""The discord.py bot: loads the cogs, syncs the commands, owns the shared services.

Services live here for the life of the process: the voice library (`store`), the speech backend
(`backend`), the voice-channel player (`playback`) and the file encoder's process pool (`encoder`).
Cogs reach them through `interaction.client`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
from collections.abc import Sequence
from typing import Any

import aiohttp
import aiohttp.web
import discord
import yarl
from discord.ext import commands

from bot import health, replies, retention
from bot.cloning import keep_voices_encoded
from bot.config import Config, ConfigError
from bot.discord_compat import gateway_closed
from bot.encoder import Encoder
from bot.limits import Limits
from bot.reencode import ModelFollower
from bot.restarts import tell_cut_short
from bot.store import VoiceLibrary, open_library
from bot.tts import TTSBackend, create_backend

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.voices",
    "cogs.clone",
    "cogs.say",
    "cogs.voice_channel",
    "cogs.settings",
    "cogs.dictionary",
    "cogs.apikeys",
    "cogs.autoread",
    "cogs.consent",
    "cogs.privacy",
    "cogs.verify",
)


def point_at_discord(config: Config) -> None:
    """Tests alone set these, to reach the loopback Discord; production leaves discord.py's own."""
    if config.discord_api_base:
        discord.http.Route.BASE = config.discord_api_base.rstrip("/")
    if config.discord_gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.discord_gateway)


class VoiceBot(commands.Bot):
    def __init__(
        self,
        config: Config,
        *,
        backend: TTSBackend | None = None,
        sync_on_start: bool = True,
        sync_only: bool = False,
        message_content: bool = False,
        api_address: tuple[str, int] | None = None,
        **discord_options: Any,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.voice_states = True  # who is in which voice channel: joining, leaving when alone
        # Messages: a speaker's consent voice message, a reply to the bot's request, which Discord shows
        # the bot without the Message Content intent (a reply that pings the bot mentions it). Auto-read
        # needs every message's text: Message Content is privileged (enabled in the Portal).
        intents.guild_messages = True
        intents.message_content = message_content
        connector = None
        if not config.voice_tls_verify:
            connector = aiohttp.TCPConnector(ssl=False)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            connector=connector,
            guild_ready_timeout=0.5,
            **discord_options,
        )
        self.config = config
        self._given_backend = backend
        self.sync_on_start = sync_on_start
        self.sync_only = sync_only
        # `voicebot run --api-port`: the speech API served from this process, on its library, limits and
        # speech backend (a local engine's batches shared with the API's requests)
        self.api_address = api_address
        self.api_runner: aiohttp.web.AppRunner | None = None
        self.holder = "bot"  # this process's role, for what it holds in the library (bot.limits)
        self.store: VoiceLibrary
        self.limits: Limits
        self.backend: TTSBackend
        self.playback: Any = None
        self.encoder = Encoder()  # its worker processes start with the first file
        self.repairs: asyncio.Task[None] | None = None
        self.reencoder: asyncio.Task[None] | None = None  # voices follow the engine's model
        self.purges: asyncio.Task[None] | None = None  # servers the bot left, purged after a grace period
        self.synced: list[discord.app_commands.AppCommand] = []
        self._kept_warm = False
        self._heartbeat: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        # the command-sync marker and the health beat live here, even with the library in PostgreSQL
        await asyncio.to_thread(self.config.data_dir.mkdir, parents=True, exist_ok=True)
        self.store = await asyncio.to_thread(
            open_library,
            self.config.data_dir,
            self.config.database_url,
            max_voices_per_guild=self.config.max_voices_per_guild,
        )
        self.limits = Limits(self.store, holder=self.holder)
        if not self.sync_only:  # `voicebot sync` needs only the command tree: no backend, no repairs
            cut_short = await self.limits.start()
            if cut_short:  # requests a killed run of this process was making: their members are told
                told = await tell_cut_short(cut_short)
                log.warning(
                    "Told %d of %d members their request was cut short by a restart", told, len(cut_short)
                )
            forgotten = await self.store.aio.resume_forgets()  # deletions a crash cut short, before serving
            if forgotten:
                log.warning("Finished %d member deletions a crash had interrupted", len(forgotten))
            self._start_speech()
            if self.api_address is not None:
                await self._serve_api(*self.api_address)
        from bot.playback import Playback

        self.playback = Playback(idle_timeout=self.config.idle_leave_s)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.tree.error(self._on_command_error)
        if self.sync_on_start:
            await self.sync_commands(force=False)

    def _start_speech(self) -> None:
        self.backend = self._given_backend or create_backend(
            self.config.backend,
            weights_dir=self.config.weights_dir,
            device=self.config.device,
            app_name=self.config.modal_app,
            timeout=self.config.backend_timeout_s,
        )
        # Voices whose latent went missing are re-encoded from their kept reference, off the hot path.
        repairer = keep_voices_encoded(self.store, self.backend)
        self.repairs = asyncio.create_task(repairer, name="voice-repairs")

    async def _serve_api(self, host: str, port: int) -> None:
        from bot.api.server import create_app, listen_failure, serve
        from bot.api.service import ApiService

        app = create_app(ApiService(self.store, self.backend, self.limits, self.config))
        try:
            self.api_runner = await serve(app, host, port)
        except OSError as exc:  # the port is taken, or the address isn't this machine's
            reason = listen_failure(exc)
            raise ConfigError(f"Can't listen on {host}:{port} for the speech API: {reason}.") from None
        log.info("Speech API listening on http://%s:%d", host, self.api_runner.addresses[0][1])

    async def _on_command_error(
        self, interaction: discord.Interaction, error: discord.app_commands.AppCommandError
    ) -> None:
        await replies.report(interaction, error)

    def _commands_digest(self, guild: discord.Object | None) -> str:
        payload = [c.to_dict(self.tree) for c in self.tree.get_commands(guild=guild)]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def sync_commands(self, *, force: bool) -> list[discord.app_commands.AppCommand]:
        """Globally, or to the dev guild only; skipped when nothing changed since the last sync
        (Discord limits how often commands may be re-registered)."""
        guild = discord.Object(self.config.dev_guild_id) if self.config.dev_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        scope = f"guild-{guild.id}" if guild else "global"
        marker = self.config.data_dir / f".commands-{scope}.sha256"
        digest = self._commands_digest(guild)
        if not force and marker.exists() and marker.read_text() == digest:
            log.info("Commands unchanged since the last sync (%s); not re-registering", scope)
            return []
        self.synced = await self.tree.sync(guild=guild)
        marker.write_text(digest)
        log.info("Synced %d commands (%s)", len(self.synced), scope)
        return self.synced

    async def on_ready(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="voicebot-heartbeat")
        if self.purges is None and not self.sync_only:
            self.purges = asyncio.create_task(self._look_after_departures(), name="voicebot-purges")
        if self.reencoder is None and not self.sync_only:
            # Voices follow the engine's model (bot.reencode): this process's shards' voices, one at a
            # time, never while its members' speech is in flight.
            follower = ModelFollower(self.store, self.backend, mine=self.owns_guild, busy=self._speaking)
            self.reencoder = asyncio.create_task(follower.run(), name="voicebot-reencode")

    def _speaking(self) -> bool:
        """Whether members' speech requests are in flight in this process."""
        return any(self.limits.reserved_seconds(guild.id) for guild in self.guilds)

    def owns_guild(self, guild_id: int) -> bool:
        """Whether the server is on this process's shards (its events and its presence are known here)."""
        return retention.owner_of_shards(getattr(self, "shard_ids", None), self.shard_count)(guild_id)

    async def _look_after_departures(self) -> None:
        """Once ready (the server list is whole): who invited the bot back or removed it while it was
        offline, then the purge of servers whose grace period ended, now and every hour."""
        try:
            await retention.settle_presence(self.store, [g.id for g in self.guilds], self.owns_guild)
        except Exception:
            log.exception("Could not check which servers the bot left while offline")
        await retention.keep_purging(self.store, self.config.purge_grace_days, self.owns_guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if await self.store.aio.returned(guild.id):
            log.info("Invited back to guild %s before its data was purged: it is kept", guild.id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.store.aio.departed(guild.id)
        days = self.config.purge_grace_days
        log.info("Left guild %s: its data is purged in %g days unless invited back", guild.id, days)

    async def _beat(self) -> None:
        """For Docker's HEALTHCHECK (`python -m bot.health`): a fresh file while connected and ready."""
        while not self.is_closed():
            if self.is_ready() and not self.ws_closed():
                await asyncio.to_thread(health.beat, self.config.data_dir)
            await asyncio.sleep(health.HEARTBEAT_S)

    def ws_closed(self) -> bool:
        return gateway_closed(self)

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        if self.playback is not None:
            await self.playback.on_voice_state_update(member, before, after)
        if self.user is not None and member.id == self.user.id:
            await self._keep_warm_while_in_voice()

    async def _keep_warm_while_in_voice(self) -> None:
        """VOICEBOT_KEEP_WARM_IN_VOICE: a warm GPU while the bot is in any voice channel (default off)."""
        keep_warm = getattr(self.backend, "keep_warm", None)
        if not self.config.keep_warm_in_voice or keep_warm is None:
            return
        in_voice = any(guild.me is not None and guild.me.voice is not None for guild in self.guilds)
        if in_voice != self._kept_warm:
            self._kept_warm = in_voice
            await keep_warm(in_voice)

    async def close(self) -> None:
        """Graceful: stop playback and leave voice, then the gateway, then the encoder, the backend and
        the DB."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self.playback is not None:
            await self.playback.close()
        keep_warm = getattr(getattr(self, "backend", None), "keep_warm", None)  # close() before setup
        if self._kept_warm and keep_warm is not None:  # leaving every channel: the GPU may scale to zero
            self._kept_warm = False
            await keep_warm(False)
        if self.repairs is not None:
            self.repairs.cancel()
        if self.reencoder is not None:
            self.reencoder.cancel()
        if self.purges is not None:
            self.purges.cancel()
        if self.api_runner is not None:  # its streams end before the backend and library close
            await self.api_runner.cleanup()
        await super().close()
        await self.encoder.close()
        if getattr(self, "backend", None) is not None:
            await self.backend.close()
        if getattr(self, "limits", None) is not None:
            await self.limits.released()
        if getattr(self, "store", None) is not None:
            await self.store.aio.close()


def shard_label(shard_ids: Sequence[int], shard_count: int) -> str:
    """ "shards 0-3 of 8": a process's role, the same after a restart (logs, what it holds in the
    library)."""
    first, last = min(shard_ids), max(shard_ids)
    shards = f"shard {first}" if first == last else f"shards {first}-{last}"
    return f"{shards} of {shard_count}"


class ShardedVoiceBot(VoiceBot, commands.AutoShardedBot):
    """The bot for a range of shards (`voicebot run --shards 0-3 --shard-count 8`): Discord sends this
    process the events of the servers on those shards only, so each server's queue and voice connection
    live here. Other processes run the other shards over the same library."""

    def __init__(self, config: Config, *, shard_ids: Sequence[int], shard_count: int, **options: Any) -> None:
        super().__init__(config, shard_ids=list(shard_ids), shard_count=shard_count, **options)
        self.holder = shard_label(shard_ids, shard_count)
        self._max_concurrency: int | None = None

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Take this shard's turn to IDENTIFY, shared with every process through the library: one per
        concurrency bucket (`shard_id % max_concurrency`) per IDENTIFY window."""
        if self._max_concurrency is None:
            try:
                self._max_concurrency = max(1, (await self.fetch_session_start_limits()).max_concurrency)
            except discord.HTTPException:
                self._max_concurrency = 1
        bucket = (shard_id or 0) % self._max_concurrency
        while True:
            wait = await self.store.aio.claim_identify(bucket, self.config.identify_interval_s)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        log.info("Shard %s identifying (bucket %d)", shard_id, bucket)


_closing: set[asyncio.Task] = set()  # held so a close under way isn't garbage-collected


def _close_soon(bot: VoiceBot) -> None:
    """A signal handler can't await: schedule the graceful close."""
    task = asyncio.ensure_future(bot.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def discord_token(config: Config) -> str:
    """The bot's token, or the one line saying where to get it."""
    if not config.discord_token:
        raise ConfigError(
            "DISCORD_TOKEN is not set: put the bot's token in the environment or in .env "
            "(Discord Developer Portal → your app → Bot → Reset Token)."
        )
    return config.discord_token


async def run_bot(
    config: Config,
    *,
    sync_only: bool = False,
    shards: tuple[Sequence[int], int] | None = None,
    api: tuple[str, int] | None = None,
) -> None:
    """Log in and serve until closed; `shards` (ids, count) runs that range of a sharded bot; `api`
    (host, port) serves the speech API from this process too."""
    token = discord_token(config)
    point_at_discord(config)
    # Auto-read needs the Message Content intent; without it in the Portal, everything else still runs.
    for message_content in (not sync_only, False):
        options: dict[str, Any] = {
            "sync_on_start": not sync_only and (shards is None or 0 in shards[0]),  # one process syncs
            "sync_only": sync_only,
            "message_content": message_content,
            "api_address": None if sync_only else api,
        }
        bot = (
            ShardedVoiceBot(config, shard_ids=shards[0], shard_count=shards[1], **options)
            if shards
            else VoiceBot(config, **options)
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _close_soon, bot)
        async with bot:
            try:
                if sync_only:
                    await bot.login(token)  # runs setup_hook: cogs loaded, nothing synced yet
                    await bot.sync_commands(force=True)
                    return
                await bot.start(token)
                return
            except discord.LoginFailure:
                raise ConfigError(
                    "Discord rejected DISCORD_TOKEN (401). Copy a fresh token from the Developer Portal."
                ) from None
            except discord.PrivilegedIntentsRequired:
                if not message_content:
                    raise ConfigError(
                        "Discord refused the bot's intents; enable them in the Portal."
                    ) from None
        log.warning(
            "The Message Content intent is off in the Developer Portal, so auto-read is unavailable: "
            "enable it under Bot → Privileged Gateway Intents, then restart. Starting without it."
        )
