"""`voicebot doctor`: check what a bot admin can get wrong, and say how to fix each thing.

Yields (ok, line) pairs; a line that is not ok says what to do. Plain `voicebot doctor` changes nothing:
it opens the library read-only (no sweep) and reports what a repair would do. `voicebot doctor --repair`
first tidies interrupted writes and temporary folders and re-encodes voices whose latent is missing or
damaged from their kept reference, then checks. No repair ever deletes a reference recording.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bot.config import Config
from bot.errors import BackendError, LibraryError
from bot.store import SCHEMA_VERSION, Audit, Voice, VoiceStore
from bot.store.faults import DB_NAME
from bot.store.health import holds_voices, remove_tree

Check = tuple[bool, str]
SHOWN = 10  # voices or folders named one per line before the rest are counted


def _modal_credentials() -> bool:
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    return Path(os.environ.get("MODAL_CONFIG_PATH", "~/.modal.toml")).expanduser().is_file()


def _each(items: Sequence, line) -> list[Check]:
    checks = [(False, line(item)) for item in items[:SHOWN]]
    if len(items) > SHOWN:
        checks.append((False, f"… and {len(items) - SHOWN} more like that."))
    return checks


def _voice(voice: Voice) -> str:
    return f"Voice “{voice.name}” ({voice.id}, guild {voice.guild_id})"


def _findings(found: Audit, store: VoiceStore) -> list[Check]:
    if found.voices_dir_missing:
        return [
            (
                False,
                f"The folder {store.voices_dir} is missing, but the library lists {found.voices} voice(s): "
                "is its volume mounted? Nothing was deleted; put the folder back.",
            )
        ]
    checks: list[Check] = []
    if found.unsettled or found.temporary:
        checks.append(
            (
                False,
                f"{len(found.unsettled)} unfinished add(s) or delete(s) and {len(found.temporary)} temporary "
                "folder(s), from an interrupted run (or one under way now): `voicebot doctor --repair` or "
                "the bot's next start tidies them; no finished voice is touched.",
            )
        )
    checks += _each(
        found.reencodable,
        lambda item: (
            f"{_voice(item[0])}: latent {item[1]}; its reference is intact, so "
            "`voicebot doctor --repair` will re-encode it."
        ),
    )
    checks += _each(
        found.files_missing,
        lambda v: (
            f"{_voice(v)}: its reference and latent are missing or damaged in "
            f"{store.folder(v.guild_id, v.id)}. Kept: restore that folder from a backup, or remove the voice "
            f"with `voicebot delete --guild {v.guild_id} --voice '{v.name}'`."
        ),
    )
    checks += _each(
        found.no_reference,
        lambda v: (
            f"{_voice(v)}: its reference recording is missing from {store.folder(v.guild_id, v.id)}. "
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
        found.look_alikes,
        lambda voices: (
            f"Voices {' and '.join(f'“{v.name}”' for v in voices)} in guild {voices[0].guild_id} "
            "look alike (cloned before look-alike names were refused). Both are kept; rename one with "
            "/voice rename."
        ),
    )
    return checks


def check_library(config: Config) -> list[Check]:
    """The library's database and files, read-only: what is wrong and what a repair would do."""
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
        store = VoiceStore(data_dir, max_voices_per_guild=config.max_voices_per_guild, sweep=False)
    except LibraryError as exc:
        return [(False, exc.admin_message)]
    except RuntimeError as exc:  # a schema newer than this bot
        return [(False, str(exc))]
    try:
        integrity = store.integrity_check()
        if integrity != "ok":
            restore = f"stop the bot and restore {data_dir / DB_NAME} from a backup"
            return [(False, f"Database integrity: {integrity} — {restore}.")]
        checks = [
            (True, "Database integrity: ok."),
            (True, f"Schema version {store.schema_version()} (this bot: {SCHEMA_VERSION})."),
        ]
        found = store.audit()
        checks += _findings(found, store)
        guilds = len({v.guild_id for v in store.all_voices()})
        checks.append((True, f"{found.voices} voice(s) in {guilds} server(s) under {data_dir}."))
        return checks
    except LibraryError as exc:
        return [(False, exc.admin_message)]
    finally:
        store.close()


async def repair_library(config: Config) -> list[Check]:
    """Tidy interrupted writes and temporary folders, re-encode damaged latents; what was done."""
    if not (config.data_dir / DB_NAME).exists():
        return []
    try:
        store = await asyncio.to_thread(
            VoiceStore, config.data_dir, max_voices_per_guild=config.max_voices_per_guild
        )
    except LibraryError as exc:
        return [(False, f"Can't repair: {exc.admin_message}")]
    checks: list[Check] = []
    try:
        swept = store.last_sweep
        found = await asyncio.to_thread(store.audit)
        for folder in found.temporary:
            await asyncio.to_thread(remove_tree, folder)
        if swept or found.temporary:
            tidied = swept.staging_removed + len(found.temporary)
            checks.append(
                (
                    True,
                    f"Repaired: undid {swept.undone_adds} interrupted add(s), finished "
                    f"{swept.finished_deletes} delete(s), removed {tidied} temporary folder(s).",
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


async def _reencode(config: Config, store: VoiceStore, pending: list[Voice]) -> list[Check]:
    from bot.cloning import reencode_pending

    if config.backend == "modal" and not _modal_credentials():
        return [
            (False, f"{len(pending)} voice(s) need re-encoding, which needs the speech backend: see below.")
        ]
    backend = _create_backend(config)
    try:
        done = await reencode_pending(store, backend)
    except BackendError as exc:
        return [(False, f"Re-encoding stopped: {exc.message} {exc.admin_hint}".rstrip())]
    finally:
        await backend.close()
    checks = [(True, f"Re-encoded {_voice(v)} from its reference (model {v.revision}).") for v in done]
    left = len(pending) - len(done)
    if left:
        checks.append(
            (False, f"{left} voice(s) could not be re-encoded: their reference is gone too (see below).")
        )
    return checks


def _create_backend(config: Config):
    from bot.tts import create_backend

    return create_backend(
        config.backend,
        weights_dir=config.weights_dir,
        device=config.device,
        app_name=config.modal_app,
        timeout=min(config.backend_timeout_s, 60.0),
    )


async def _backend(config: Config) -> list[Check]:
    if config.backend == "modal" and not _modal_credentials():
        return [
            (
                False,
                "No Modal credentials: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (in the "
                "environment or .env), or run `modal token new`.",
            )
        ]
    if config.backend == "local":
        from modal_tts.engine import WEIGHT_FILES

        missing = [name for name in WEIGHT_FILES if not (config.weights_dir / name).is_file()]
        if missing:
            return [
                (
                    False,
                    f"Weights folder {config.weights_dir} lacks {', '.join(missing)}: fill it "
                    "with `modal_tts.weights.fill_weights_dir` or try `python -m modal_tts.tiny`.",
                )
            ]
    backend = _create_backend(config)
    try:
        info = await backend.info()
    except BackendError as exc:
        return [(False, f"Speech backend ({config.backend}): {exc.message} {exc.admin_hint}".rstrip())]
    finally:
        await backend.close()
    return [
        (
            True,
            f"Speech backend ({config.backend}) answers: model {info.get('revision')} on "
            f"{info.get('device_name') or info.get('device')}.",
        )
    ]


async def diagnose(config: Config, *, repair: bool = False) -> AsyncIterator[Check]:
    yield True, f"Configuration loaded: backend {config.backend}, data {config.data_dir}."
    if config.discord_token:
        yield True, "Discord token is set."
    else:
        yield False, "DISCORD_TOKEN is not set: put it in the environment or .env to run the bot."
    if repair:
        for check in await repair_library(config):
            yield check
    for check in await asyncio.to_thread(check_library, config):
        yield check
    for check in await _backend(config):
        yield check
