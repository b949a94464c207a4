"""`voicebot export|import`: a guild's voices to a .tar and back, for a backup or a move; `voicebot
migrate`: the whole SQLite library into PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bot import archive, audit
from bot.cli.common import Progress, check_writable, library_exists, open_store, print_json, write_atomically
from bot.cli.options import examples, guild_id, guild_option, library_command
from bot.config import Config
from bot.errors import InvalidInput
from bot.wording import plural

if TYPE_CHECKING:
    from bot.store import Voice


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
        audit.record("clone", actor="cli", guild=item.voice.guild_id, voice=item.voice.id, source="import")
        print(f"Imported “{item.voice.name}”{renamed} into guild {item.voice.guild_id}.")
    print(f"{plural(len(imported), 'voice')} imported into guild {args.guild}.")
    return 0


def _database_url(raw: str) -> str:
    from bot.store.postgres import is_database_url

    if not is_database_url(raw):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a PostgreSQL URL: use postgresql://user:password@host:5432/dbname"
        )
    return raw


async def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    from bot import migration
    from bot.store.postgres import PostgresVoiceStore, redacted
    from bot.store.sqlite import VoiceStore

    if not (config.data_dir / "voicebot.db").exists():
        raise InvalidInput(
            f"There is no library in {config.data_dir} to migrate (no voicebot.db); nothing was copied."
        )
    progress = Progress(None if not args.json else False)

    def run() -> migration.Report:
        source = VoiceStore(config.data_dir, max_voices_per_guild=config.max_voices_per_guild, read_only=True)
        try:
            target = PostgresVoiceStore(args.to, max_voices_per_guild=config.max_voices_per_guild)
            try:
                # the target's own error mapping: a dropped connection or a full disk is one line
                return target._guard(lambda: migration.migrate(source, target, progress))
            finally:
                target.close()
        finally:
            source.close()

    report = await asyncio.to_thread(run)
    if args.json:
        print_json(report.as_dict())
        return 0
    already = (
        f" ({report.voices_already_there} {'was' if report.voices_already_there == 1 else 'were'} there "
        "from an earlier run)"
        if report.voices_already_there
        else ""
    )
    print(
        f"Copied {plural(report.voices_copied, 'voice')}{already} and "
        f"{plural(report.usage_copied, 'usage record')} from {config.data_dir} into {redacted(args.to)}."
    )
    if report.skipped_unsettled:
        print(
            f"Left out {plural(report.skipped_unsettled, 'unfinished write')} "
            "a crash left in the source (`voicebot doctor --repair` settles them; then migrate again)."
        )
    rows = sum(report.tables.values())
    print(f"Verified: {plural(rows, 'row')} in {len(report.tables)} tables, counts and checksums match.")
    print(f"Use it: set VOICEBOT_DATABASE_URL={redacted(args.to)} (with its password) and start the bot.")
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

    move = commands.add_parser(
        "migrate",
        help="copy the SQLite library (the data folder) into PostgreSQL",
        description="Copy every voice, setting, usage record, dictionary, auto-read rule and API key of "
        "the data folder's library into a PostgreSQL database, then verify counts and checksums. Stop the "
        "bot first. Safe to run again or to resume: nothing is copied twice.",
        epilog=examples(
            "voicebot migrate --to postgresql://voicebot:secret@localhost:5432/voicebot",
            "voicebot migrate --to postgresql://voicebot@db/voicebot --json",
        ),
    )
    move.add_argument(
        "--to", type=_database_url, required=True, metavar="URL", help="the PostgreSQL database"
    )
    move.add_argument("--json", action="store_true", help="print the report as JSON")
    library_command(move, cmd_migrate)
