"""`voicebot doctor`: check what a bot admin can get wrong, and say how to fix each thing.

Yields findings: ok, FIX (a problem, with a line saying what to run) or note (fine for some uses, such
as no Discord token for someone who only uses the terminal commands). Plain `voicebot doctor` changes nothing:
it opens the library read-only (no sweep) and reports what a repair would do. `voicebot doctor --repair`
first tidies interrupted writes and temporary folders and re-encodes voices whose latent is missing or
damaged from their kept reference, then checks. No repair ever deletes a reference recording.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.choices import BACKENDS
from bot.cli.common import create_backend, terminal_message
from bot.config import Config
from bot.errors import BackendError, BackendNotDeployed, LibraryError
from bot.store import Audit, Voice, VoiceLibrary, VoiceStore, open_library
from bot.store.faults import DB_NAME
from bot.store.health import holds_voices
from bot.tts import readiness
from bot.wording import plural

T = TypeVar("T")

Check = tuple[bool, str]
SHOWN = 10  # voices or folders named one per line before the rest are counted


def _each(items: Sequence[T], line: Callable[[T], str]) -> list[Check]:
    checks = [(False, line(item)) for item in items[:SHOWN]]
    if len(items) > SHOWN:
        checks.append((False, f"… and {len(items) - SHOWN} more like that."))
    return checks


def _voice(voice: Voice) -> str:
    return f"“{voice.name}” ({voice.id}, guild {voice.guild_id})"


def _findings(found: Audit, store: VoiceLibrary) -> list[Check]:
    if found.voices_dir_missing and isinstance(store, VoiceStore):
        return [
            (
                False,
                f"The folder {store.voices_dir} is missing, but the library lists "
                f"{plural(found.voices, 'voice')}: "
                "is its volume mounted? Nothing was deleted; put the folder back.",
            )
        ]
    checks: list[Check] = []
    if found.unsettled or found.temporary:
        checks.append(
            (
                False,
                f"{plural(len(found.unsettled), 'unfinished add or delete', 'unfinished adds or deletes')} "
                f"and {plural(len(found.temporary), 'temporary folder')}, from an interrupted run (or one "
                "under way now): `voicebot doctor --repair` or "
                "the bot's next start tidies them; no finished voice is touched.",
            )
        )
    checks += _each(
        found.reencodable,
        lambda item: (
            f"Voice {_voice(item[0])}: latent {item[1]}; its reference is intact, so "
            "`voicebot doctor --repair` will re-encode it."
        ),
    )
    checks += _each(
        found.files_missing,
        lambda v: (
            f"Voice {_voice(v)}: its reference and latent are missing or damaged in "
            f"{store.files_of(v)}. Kept: restore them from a backup, or remove the voice "
            f"with `voicebot delete --guild {v.guild_id} --voice '{v.name}'`."
        ),
    )
    checks += _each(
        found.no_reference,
        lambda v: (
            f"Voice {_voice(v)}: its reference recording is missing from {store.files_of(v)}. "
            "It still speaks but can't be re-encoded after a model change: restore it from a backup."
        ),
    )
    checks += _each(
        found.strays,
        lambda path: (
            f"Folder {path} belongs to no voice in the library. Kept: restore a {DB_NAME} that "
            "matches it, or remove it by hand if it isn't needed."
        ),
    )
    checks += _each(
        found.wrong_types,
        lambda row: (
            f"In {store.where}, {row}. The bot leaves such a voice out (a server's settings "
            "or auto-read settings are refused) until the value is fixed: restore the library from a "
            "backup, or correct that value with `sqlite3`."
        ),
    )
    checks += _each(
        found.look_alikes,
        lambda voices: (
            f"Voices {' and '.join(f'“{v.name}”' for v in voices)} in guild {voices[0].guild_id} "
            "look alike (cloned before look-alike names were refused). Both are kept; rename one with "
            f"`voicebot voice rename --guild {voices[0].guild_id} --voice '{voices[0].name}' NEW_NAME`."
        ),
    )
    return checks


def check_library(config: Config) -> list[Check]:
    """The library's database and files, read-only: what is wrong and what a repair would do."""
    if config.database_url:
        return _check_postgres(config)
    data_dir = config.data_dir
    if not (data_dir / DB_NAME).exists():
        if holds_voices(data_dir / "voices"):
            return [
                (
                    False,
                    f"{data_dir / DB_NAME} is missing but voices/ holds voices: restore it from a backup.",
                )
            ]
        return [(True, f"Data folder {data_dir} will be set up on first use.")]
    if not os.access(data_dir, os.W_OK):
        return [(False, f"Data folder {data_dir} is not writable: fix its owner or permissions.")]
    try:
        store = VoiceStore(data_dir, max_voices_per_guild=config.max_voices_per_guild, read_only=True)
    except LibraryError as exc:  # damaged, or written by a newer voicebot
        return [(False, exc.admin_message)]
    return _check_opened(
        store, f"stop the bot and restore {data_dir / DB_NAME} from a backup", f"under {data_dir}"
    )


def _check_postgres(config: Config) -> list[Check]:
    from bot.store.postgres import PostgresVoiceStore

    url = config.database_url or ""
    try:
        store = PostgresVoiceStore(
            url, max_voices_per_guild=config.max_voices_per_guild, read_only=True, empty_ok=True
        )
    except LibraryError as exc:  # unreachable, or written by a newer voicebot
        return [(False, exc.admin_message)]
    if store.schema_on_disk == 0:
        store.close()
        return [(True, f"PostgreSQL library {store.where}: reachable; set up on the bot's first start.")]
    return _check_opened(store, f"restore {store.where} from a pg_dump backup", f"in {store.where}")


def _check_opened(store: VoiceLibrary, restore: str, where: str) -> list[Check]:
    try:
        integrity = store.integrity_check()
        if integrity != "ok":
            return [(False, f"Database integrity: {integrity} — {restore}.")]
        checks = [
            (True, "Database integrity: ok."),
            (True, f"Schema version {store.schema_on_disk} (this bot: {store.schema_latest})."),
        ]
        if store.schema_on_disk < store.schema_latest:
            checks[-1] = (
                True,
                f"Schema version {store.schema_on_disk}, older than this bot's {store.schema_latest}: the "
                "bot's next start (or `voicebot doctor --repair`) upgrades it; doctor changed nothing.",
            )
        found = store.audit()
        checks += _findings(found, store)
        guilds = len({v.guild_id for v in store.all_voices()})
        checks.append((True, f"{plural(found.voices, 'voice')} in {plural(guilds, 'guild')} {where}."))
        return checks
    except LibraryError as exc:
        return [(False, exc.admin_message)]
    finally:
        store.close()


async def repair_library(config: Config) -> list[Check]:
    """Tidy interrupted writes and temporary folders, re-encode damaged latents; what was done."""
    if not config.database_url and not (config.data_dir / DB_NAME).exists():
        return []
    try:
        store = await asyncio.to_thread(
            lambda: open_library(
                config.data_dir,
                config.database_url,
                max_voices_per_guild=config.max_voices_per_guild,
                sweep=False,
            )
        )
    except LibraryError as exc:
        return [(False, f"Can't repair: {exc.admin_message}")]
    checks: list[Check] = []
    try:
        # Under the exclusive files lock: what was left over is tidied. A temporary folder the audit
        # finds after that belongs to a write in flight (the bot's, say) and is left alone.
        swept = await asyncio.to_thread(lambda: store.sweep(legacy=True))
        found = await asyncio.to_thread(store.audit)
        if swept:
            checks.append(
                (
                    True,
                    f"Repaired: undid {plural(swept.undone_adds, 'interrupted add')}, completed "
                    f"{plural(swept.finished_adds, 'add')} whose files were in place, finished "
                    f"{plural(swept.finished_deletes, 'delete')}, "
                    f"removed {plural(swept.staging_removed, 'temporary folder')}.",
                )
            )
        for voice, _problem in found.reencodable:
            await asyncio.to_thread(store.mark_needs_reencode, voice)
        pending = await asyncio.to_thread(store.needing_reencode)
        if pending:
            checks += await _reencode(config, store, pending)
    except LibraryError as exc:
        checks.append((False, f"Repair stopped: {exc.admin_message}"))
    finally:
        await asyncio.to_thread(store.close)
    return checks


async def _reencode(config: Config, store: VoiceLibrary, pending: list[Voice]) -> list[Check]:
    from bot.cloning import reencode_pending

    try:
        readiness.check_setup(config.backend, config.weights_dir)
    except BackendError:
        return [
            (
                False,
                f"{plural(len(pending), 'voice')} to re-encode, which needs the speech backend: see below.",
            )
        ]
    backend = create_backend(config, timeout=60.0)
    try:
        repairs = await reencode_pending(store, backend)
    except BackendError as exc:
        return [(False, f"Re-encoding stopped: {terminal_message(exc, argparse.Namespace())}")]
    finally:
        await backend.close()
    checks = [
        (True, f"Re-encoded voice {_voice(v)} from its reference (model {v.revision}).") for v in repairs.done
    ]
    checks += _each(
        repairs.failed, lambda item: f"Voice {_voice(item[0])} could not be re-encoded: {item[1]}."
    )
    return checks


async def _backend(config: Config) -> list[Finding]:
    """The speech backend, through the checks `voicebot run` makes before it logs in, then one call
    (info) that shows the model and the GPU. An unknown VOICEBOT_BACKEND is the report's first line."""
    if config.backend not in BACKENDS:
        return []
    try:
        readiness.check_setup(config.backend, config.weights_dir)
    except BackendError as exc:
        return [_setup_finding(exc)]
    # a blocking connect (up to 5 s): off the loop, where the Discord check may be running
    if config.backend == "modal" and (unreachable := await asyncio.to_thread(readiness.modal_unreachable)):
        return [Finding("fix", f"{unreachable}.", "check the network, then run `voicebot doctor` again.")]
    backend = create_backend(config, timeout=60.0)
    try:
        info = await backend.info()
    except BackendNotDeployed:
        return [
            Finding("fix", f"The Modal app {config.modal_app} is not deployed.", "run `voicebot deploy`.")
        ]
    except BackendError as exc:
        return [_setup_finding(exc)]
    finally:
        await backend.close()
    where = info.get("device_name") or info.get("device")
    from bot.cli.reencode import model_findings  # how far the voices are toward this model

    following = await model_findings(config, info.get("revision"))
    if config.backend == "modal":
        gpu = info.get("gpu") or where
        line = f"Modal app {config.modal_app} is deployed: model {info.get('revision')} on {gpu}."
        return [Finding("ok", line), *following]
    line = f"Speech backend (local) answers: model {info.get('revision')} on {where}."
    return [Finding("ok", line), *following]


def _setup_finding(exc: BackendError) -> Finding:
    """A backend error as a FIX line: what is wrong, with its fix on a line (and a JSON field) of its own
    where the error gives one apart."""
    what, fix = getattr(exc, "what", None), getattr(exc, "fix", None)
    if what and fix:
        return Finding("fix", f"{what}.", fix)
    return Finding("fix", f"Speech backend: {terminal_message(exc, argparse.Namespace())}")


# What the bot needs where it works, by Discord's permission bit: View Channels 10, Send Messages 11,
# Embed Links 14, Attach Files 15 (file replies), Read Message History 16, Connect 20, Speak 21, Send Voice
# Messages 46. The README's invite link asks for the same.
INVITE_PERMISSIONS = sum(1 << bit for bit in (10, 11, 14, 15, 16, 20, 21, 46))


def invite_link(client_id: object) -> str:
    return (
        f"https://discord.com/oauth2/authorize?client_id={client_id}&scope=bot+applications.commands"
        f"&permissions={INVITE_PERMISSIONS}"
    )


# (method, URL, headers) -> (HTTP status, JSON body); tests inject one, the default uses aiohttp.
DiscordGet = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]
DISCORD_API = "https://discord.com/api/v10"


async def _aiohttp_get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    import aiohttp

    # Short: doctor should say "unreachable" in seconds, not hang on a dead network.
    timeout = aiohttp.ClientTimeout(total=10, connect=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as response,
    ):
        body = await response.json(content_type=None) if response.status == 200 else None
        return response.status, body


async def check_discord(config: Config, get: DiscordGet | None = None) -> list[Finding]:
    """The token against Discord: accepted, which bot it is, and whether it is in any server."""
    if not config.discord_token:
        return [
            Finding(
                "note",
                "DISCORD_TOKEN is not set: fine for the terminal commands; `voicebot run` needs it.",
                "put DISCORD_TOKEN=... in .env (Developer Portal → your app → Bot → Reset Token)",
            )
        ]
    get = get or _aiohttp_get
    base = (config.discord_api_base or DISCORD_API).rstrip("/")
    headers = {"Authorization": f"Bot {config.discord_token}"}
    try:
        status, me = await get(f"{base}/users/@me", headers)
        if status == 200:
            status, guilds = await get(f"{base}/users/@me/guilds", headers)
    except (OSError, TimeoutError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return [
            Finding(
                "fix",
                f"Can't reach Discord at {base} ({detail}).",
                "check the network, then run `voicebot doctor` again",
            )
        ]
    except Exception as exc:  # aiohttp's own errors, bad JSON: still one line
        return [
            Finding(
                "fix",
                f"Can't reach Discord at {base} ({type(exc).__name__}).",
                "check the network, then run `voicebot doctor` again",
            )
        ]
    if status == 401:
        return [
            Finding(
                "fix",
                "Discord rejected DISCORD_TOKEN (401).",
                "copy a fresh token from the Developer Portal (Bot → Reset Token) into .env",
            )
        ]
    if status != 200:
        return [
            Finding("fix", f"Discord answered HTTP {status} to the token check.", "try again in a minute")
        ]
    findings = [Finding("ok", f"Discord token accepted: the bot is {me.get('username')} ({me.get('id')}).")]
    if not guilds:
        findings.append(
            Finding(
                "fix",
                "The bot is in no server yet.",
                f"invite it: {invite_link(me.get('id'))}",
            )
        )
    else:
        findings.append(Finding("ok", f"The bot is in {plural(len(guilds), 'server')}."))
    return findings


@dataclass(frozen=True)
class Finding:
    """One line of the report: `ok`, `fix` (a problem, counted) or `note` (worth knowing, not a problem);
    `fix` is a line the admin can act on."""

    status: str
    line: str
    fix: str | None = None

    @property
    def problem(self) -> bool:
        return self.status == "fix"

    def render(self) -> str:
        label = {"ok": "ok  ", "fix": "FIX ", "note": "note"}[self.status]
        return f"{label} {self.line}" + (f"\n       fix: {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, str | None]:
        return {"status": self.status, "line": self.line, "fix": self.fix}


def _found(checks: list[Check]) -> list[Finding]:
    return [Finding("ok" if ok else "fix", line) for ok, line in checks]


async def diagnose(
    config: Config, *, repair: bool = False, discord_get: DiscordGet | None = None
) -> AsyncIterator[Finding]:
    if config.backend in BACKENDS:
        library = "library in PostgreSQL" if config.database_url else f"data folder {config.data_dir}"
        yield Finding("ok", f"Configuration loaded: backend {config.backend}, {library}.")
    else:
        allowed = " or ".join(BACKENDS)
        yield Finding("fix", f"VOICEBOT_BACKEND is {config.backend!r}.", f"set it to {allowed} in .env.")
    for finding in await check_discord(config, discord_get):
        yield finding
    if repair:
        for finding in _found(await repair_library(config)):
            yield finding
    for finding in _found(await asyncio.to_thread(check_library, config)):
        yield finding
    for finding in await _backend(config):
        yield finding
