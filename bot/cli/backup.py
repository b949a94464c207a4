"""`voicebot export|import`: a guild's voices to a .tar and back, for a backup or a move."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bot import archive
from bot.cli.common import check_writable, library_exists, open_store, write_atomically
from bot.cli.options import guild_id, guild_option, library_command
from bot.config import Config
from bot.errors import InvalidInput
from bot.wording import plural

if TYPE_CHECKING:
    from bot.store import Voice

audit = logging.getLogger("bot.audit")


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


def add_parsers(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="write a guild's voices to a .tar (backup or move)")
    guild_option(export)
    export.add_argument("--out", type=Path, required=True, help="the .tar file to write")
    library_command(export, cmd_export)

    load = commands.add_parser("import", help="add the voices of an exported .tar to a guild")
    load.add_argument("file", type=Path, help="a .tar written by `voicebot export`")
    load.add_argument("--guild", type=guild_id, metavar="ID", help="target guild (default: the one exported)")
    load.add_argument(
        "--rename", action="store_true", help="give colliding names a -2, -3… suffix instead of refusing"
    )
    library_command(load, cmd_import)
