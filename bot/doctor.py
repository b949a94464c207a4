"""`voicebot doctor`: check what a bot admin can get wrong, and say how to fix each thing.

Yields (ok, line) pairs; a line that is not ok says what to do. Nothing here changes the library except
the start-up sweep every open does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from bot.config import Config
from bot.errors import BackendError
from bot.store import SCHEMA_VERSION, VoiceStore

Check = tuple[bool, str]


def _modal_credentials() -> bool:
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    return Path(os.environ.get("MODAL_CONFIG_PATH", "~/.modal.toml")).expanduser().is_file()


def _library(config: Config) -> list[Check]:
    data_dir = config.data_dir
    if not data_dir.exists():
        return [(True, f"Data folder {data_dir} will be created on first use.")]
    if not os.access(data_dir, os.W_OK):
        return [(False, f"Data folder {data_dir} is not writable: fix its owner or permissions.")]
    store = VoiceStore(data_dir, max_voices_per_guild=config.max_voices_per_guild)
    try:
        checks = []
        integrity = store.integrity_check()
        checks.append(
            (
                integrity == "ok",
                f"Database integrity: {integrity}"
                + ("" if integrity == "ok" else " — restore data/ from a backup."),
            )
        )
        checks.append((True, f"Schema version {store.schema_version()} (this bot: {SCHEMA_VERSION})."))
        swept = store.last_sweep
        if swept.removed_folders or swept.removed_rows:
            checks.append(
                (
                    True,
                    f"Repaired: removed {swept.removed_folders} orphan folder(s) and "
                    f"{swept.removed_rows} voice(s) whose files were missing.",
                )
            )
        guilds = store.db.execute("select count(distinct guild_id), count(*) from voices").fetchone()
        checks.append((True, f"{guilds[1]} voice(s) in {guilds[0]} server(s) under {data_dir}."))
        return checks
    finally:
        store.close()


async def _backend(config: Config) -> list[Check]:
    from bot.tts import create_backend

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
    backend = create_backend(
        config.backend,
        weights_dir=config.weights_dir,
        device=config.device,
        app_name=config.modal_app,
        timeout=min(config.backend_timeout_s, 60.0),
    )
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


async def diagnose(config: Config) -> AsyncIterator[Check]:
    yield True, f"Configuration loaded: backend {config.backend}, data {config.data_dir}."
    if config.discord_token:
        yield True, "Discord token is set."
    else:
        yield False, "DISCORD_TOKEN is not set: put it in the environment or .env to run the bot."
    for check in await asyncio.to_thread(_library, config):
        yield check
    for check in await _backend(config):
        yield check
