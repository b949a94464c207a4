"""`voicebot export|import`: a guild's voices to a .tar and back, for a backup or a move."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bot import archive
from bot.cli.common import check_writable, library_exists, open_store, write_atomically
from bot.cli.options import examples, guild_id, guild_option, library_command
from bot.config import Config
from bot.errors import InvalidInput
from bot.wording import plural

if TYPE_CHECKING:
    from bot.store import Voice

audit = logging.getLogger("bot.audit")


def _refuse_to_replace(out: Path) -> None:
    """An existing file at --out is likely an older backup: replaced only with --force. Through a symlink
    as the write goes; a pipe or device (`--out /dev/stdout`) is no file and is written as asked."""
    if os.path.isfile(out):
        raise InvalidInput(f"{out} already exists; pass --force to replace it. Nothing was written.")


async def cmd_export(args: argparse.Namespace, config: Config) -> int:
    check_writable(args.out)
    if not args.force:
        _refuse_to_replace(args.out)
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
    # the target guild, known before the import so that a refusal names it ("Guild 1 already has …")
    args.guild = args.guild or await asyncio.to_thread(archive.exported_guild, args.file)
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
    print(f"{plural(len(imported), 'voice')} imported into guild {args.guild}.")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a guild's voices to a .tar (backup or move)",
        epilog=examples(
            "voicebot export --guild 123 --out guild-123.tar",
            "voicebot export --guild 123 --out guild-123.tar --force",
        ),
    )
    guild_option(export)
    export.add_argument("--out", type=Path, required=True, help="the .tar file to write")
    export.add_argument("--force", action="store_true", help="replace --out if it already exists")
    library_command(export, cmd_export)

    load = commands.add_parser(
        "import",
        help="add the voices of an exported .tar to a guild",
        epilog=examples(
            "voicebot import guild-123.tar", "voicebot import --guild 456 --rename guild-123.tar"
        ),
    )
    load.add_argument("file", type=Path, help="a .tar written by `voicebot export`")
    load.add_argument("--guild", type=guild_id, metavar="ID", help="target guild (default: the one exported)")
    load.add_argument(
        "--rename", action="store_true", help="give colliding names a -2, -3… suffix instead of refusing"
    )
    library_command(load, cmd_import)
