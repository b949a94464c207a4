"""`voicebot voices|delete|voice`: list a guild's voices, delete one, rename or show one, or set a
user's default.

Each command is `async def cmd_x(args, config) -> int`; errors are raised as `bot.errors` types and
worded for the terminal by `bot.cli.main`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from bot import audit
from bot.cli.common import library_exists, open_store, print_json
from bot.cli.options import (
    Parser,
    examples,
    guild_option,
    json_option,
    library_command,
    user_id,
    voice_option,
)
from bot.config import Config
from bot.errors import VoiceNotFound


async def cmd_voices(args: argparse.Namespace, config: Config) -> int:
    voices = []
    found = library_exists(config)
    if found:
        store = open_store(config, writes=False)
        try:
            voices = store.list(args.guild)
        finally:
            store.close()
    if args.json:
        print_json([asdict(v) for v in voices])
    elif not voices:
        # a wrong --data-dir (or working directory) must not look like an empty guild
        where = " yet" if found else f" in {config.data_dir} (no voice library there yet)"
        print(
            f"Guild {args.guild} has no voices{where}. Add one with: voicebot clone --guild "
            f"{args.guild} --name NAME --consent USER_ID FILE"
        )
    else:
        print(f"{'NAME':<32}  {'LENGTH':>8}  {'OWNER':<20}  {'CREATED':<25}  ID")
        for v in voices:
            print(f"{v.name:<32}  {v.duration_s:6.1f} s  {v.owner_id:<20}  {v.created_at:<25}  {v.id}")
    return 0


async def cmd_delete(args: argparse.Namespace, config: Config) -> int:
    if not library_exists(config):
        raise VoiceNotFound(args.voice)
    store = open_store(config, writes=True)
    try:
        voice = store.delete(args.guild, args.voice)
    finally:
        store.close()
    audit.record("delete", actor="cli", guild=voice.guild_id, voice=voice.id, name=voice.name)
    print(f"Deleted “{voice.name}” and its files from guild {voice.guild_id}.")
    return 0


async def cmd_voice(args: argparse.Namespace, config: Config) -> int:
    """`voice rename|info|default`: the terminal's /voice."""
    if not library_exists(config):
        raise VoiceNotFound(args.voice)
    store = open_store(config, writes=args.action != "info")
    try:
        if args.action == "rename":
            old = store.get(args.guild, args.voice).name
            voice = store.rename(args.guild, args.voice, args.new_name)
            audit.record("settings", actor="cli", guild=args.guild, voice=voice.id, renamed_to=voice.name)
            print(f"Renamed “{old}” to “{voice.name}” in guild {args.guild}.")
        elif args.action == "default":
            voice = store.set_default_voice(args.guild, args.user, args.voice)
            print(f"User {args.user}'s default voice in guild {args.guild} is now “{voice.name}”.")
        else:
            voice = store.get(args.guild, args.voice)
            if args.json:
                print_json(asdict(voice))
            else:
                for key, value in asdict(voice).items():
                    print(f"{key:<11} {value}")
    finally:
        store.close()
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    voices = commands.add_parser(
        "voices",
        help="list a guild's voices",
        epilog=examples("voicebot voices --guild 123", "voicebot voices --guild 123 --json"),
    )
    guild_option(voices)
    json_option(voices)
    library_command(voices, cmd_voices)

    delete = commands.add_parser(
        "delete",
        help="delete a voice and its files",
        epilog=examples(
            "voicebot delete --guild 123 --voice Ada", "voicebot delete --guild 123 --voice 3f9a0c1d2e4b5a6c"
        ),
    )
    guild_option(delete)
    voice_option(delete)
    library_command(delete, cmd_delete)

    rename_example = "voicebot voice rename --guild 123 --voice Ada Ada-old"
    info_example = "voicebot voice info --guild 123 --voice Ada --json"
    default_example = "voicebot voice default --guild 123 --voice Ada --user 456"
    voice = commands.add_parser(
        "voice",
        help="rename a voice, show it, or set a user's default",
        epilog=examples(rename_example, info_example, default_example),
    )
    actions = voice.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    rename = actions.add_parser("rename", help="give a voice a new name", epilog=examples(rename_example))
    rename.add_argument("new_name", help="1–32 letters, digits, spaces, - or _")
    info = actions.add_parser(
        "info",
        help="show everything the library knows about a voice",
        epilog=examples("voicebot voice info --guild 123 --voice Ada", info_example),
    )
    json_option(info)
    default = actions.add_parser(
        "default",
        help="set the voice a user's /say uses when none is given",
        epilog=examples(default_example),
    )
    default.add_argument(
        "--user", type=user_id, required=True, metavar="USER_ID", help="the member's user id"
    )
    for sub in (rename, info, default):
        guild_option(sub)
        voice_option(sub)
    library_command(voice, cmd_voice)
