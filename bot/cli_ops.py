"""`voicebot doctor|run|sync|export|import`: the bot's process, its health, and moving a guild's voices."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import TYPE_CHECKING

from bot import archive
from bot.cli_common import check_writable, library_exists, open_store, write_atomically
from bot.config import Config
from bot.errors import InvalidInput, VoiceBotError
from bot.wording import plural

if TYPE_CHECKING:
    from bot.store import Voice

audit = logging.getLogger("bot.audit")


class DiscordUnreachable(VoiceBotError):
    exit_code = 1

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(
            f"Can't reach Discord at {where} ({detail}). Check the network (and VOICEBOT_DISCORD_API_BASE "
            "if set), then try again."
        )


def _discord_errors() -> tuple[type[BaseException], ...]:
    import aiohttp
    import discord

    return (
        aiohttp.ClientError,
        discord.GatewayNotFound,
        discord.HTTPException,
        ConnectionError,
        TimeoutError,
    )


def _api_base(config: Config) -> str:
    return config.discord_api_base or "https://discord.com/api"


async def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from bot.doctor import diagnose

    checks = [check async for check in diagnose(config, repair=args.repair)]
    problems = sum(check.problem for check in checks)
    if args.json:
        print(json.dumps([check.as_dict() for check in checks], indent=2, ensure_ascii=False))
    else:
        for check in checks:
            print(check.render())
        print(
            "All good." if not problems else f"{plural(problems, 'problem')} to fix: see the FIX lines above."
        )
    return 0 if not problems else 1


async def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from bot.client import run_bot

    if library_exists(config):  # a damaged library is one line now, not a traceback after login
        store = await asyncio.to_thread(open_store, config, writes=False)
        await asyncio.to_thread(store.close)
    logging.getLogger().setLevel(logging.INFO)
    try:
        await run_bot(config)
    except _discord_errors() as exc:
        raise DiscordUnreachable(_api_base(config), _short(exc)) from None
    return 0


async def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    from bot.client import run_bot

    try:
        await run_bot(config, sync_only=True)
    except _discord_errors() as exc:
        raise DiscordUnreachable(_api_base(config), _short(exc)) from None
    scope = f"guild {config.dev_guild_id}" if config.dev_guild_id else "all servers (global)"
    print(f"Slash commands registered for {scope}.")
    return 0


def _short(exc: BaseException) -> str:
    cause = getattr(exc, "os_error", None) or exc  # aiohttp wraps the socket's own error
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return text.splitlines()[0][:120]


async def cmd_export(args: argparse.Namespace, config: Config) -> int:
    check_writable(args.out)
    voices: list[Voice] = []
    if library_exists(config):
        store = open_store(config, writes=False)
        try:
            if store.count(args.guild):
                data, voices = await asyncio.to_thread(archive.export_guild, store, args.guild)
        finally:
            store.close()
    if not voices:  # more likely a wrong --guild or --data-dir than a wish for an empty backup
        raise InvalidInput(f"Guild {args.guild} has no voices in {config.data_dir}; nothing was written.")
    write_atomically(args.out, data)
    print(f"Exported {plural(len(voices), 'voice')} of guild {args.guild} to {args.out}.")
    return 0


async def cmd_import(args: argparse.Namespace, config: Config) -> int:
    if not args.file.is_file():
        raise archive.BadArchive(args.file, "there is no file there")
    store = open_store(config, writes=True)
    try:
        imported = await asyncio.to_thread(
            archive.import_guild, store, args.file, args.guild, rename=args.rename
        )
    finally:
        store.close()
    for item in imported:
        renamed = f" (renamed from “{item.renamed_from}”)" if item.renamed_from else ""
        audit.info("CLI import: voice %s into guild %s", item.voice.id, item.voice.guild_id)
        print(f"Imported “{item.voice.name}”{renamed} into guild {item.voice.guild_id}.")
    guild = imported[0].voice.guild_id if imported else args.guild
    print(f"{plural(len(imported), 'voice')} imported{f' into guild {guild}' if guild else ''}.")
    return 0
