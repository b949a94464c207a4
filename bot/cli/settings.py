"""`voicebot settings|dictionary`: a guild's settings and its pronunciation dictionary.

Each command is `async def cmd_x(args, config) -> int`; errors are raised as `bot.errors` types and
worded for the terminal by `bot.cli.main`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from bot import audit
from bot.choices import FILE_FORMATS, MODES
from bot.cli.common import library_exists, open_store, print_json
from bot.cli.options import (
    Parser,
    examples,
    guild_option,
    json_option,
    library_command,
    ranged,
    role_id,
)
from bot.config import Config


def _setting_changes(args: argparse.Namespace, config: Config) -> dict[str, object]:
    changes: dict[str, object] = {}
    if args.everyone_may_clone:
        changes["clone_role_id"] = None
    elif args.clone_role is not None:
        changes["clone_role_id"] = args.clone_role
    if args.max_text is not None:
        changes["max_text_chars"] = min(args.max_text, config.max_text_chars)
    if args.cooldown is not None:
        changes["cooldown_s"] = float(args.cooldown)
    if args.daily_quota is not None:
        changes["daily_quota_s"] = float(args.daily_quota * 60) or None  # 0: no limit, as on Discord
    if args.default_mode is not None:
        changes["default_mode"] = args.default_mode
    if args.file_format is not None:
        changes["file_format"] = args.file_format
    if args.speaker_consent is not None:
        changes["speaker_consent"] = args.speaker_consent == "on"
    return changes


async def cmd_settings(args: argparse.Namespace, config: Config) -> int:
    changes = _setting_changes(args, config)
    if not changes and not library_exists(config):
        store = None
        from bot.store.settings import GuildSettings

        settings = GuildSettings(args.guild)
    else:
        store = open_store(config, writes=bool(changes))
        try:
            settings = store.update_settings(args.guild, **changes) if changes else store.settings(args.guild)
        finally:
            store.close()
    if changes:
        audit.record("settings", actor="cli", guild=args.guild, **changes)
    if args.json:
        print_json(asdict(settings))
        return 0
    shown = {
        "clone role": settings.clone_role_id or "everyone may clone",
        "max text": f"{settings.max_text_chars or config.max_text_chars} characters",
        "cooldown": f"{settings.cooldown_s:g} s",
        "daily quota": f"{settings.daily_quota_s / 60:g} min" if settings.daily_quota_s else "no limit",
        "default mode": settings.default_mode,
        "file format": settings.file_format,
        "speaker consent": "on" if settings.speaker_consent else "off",
    }
    print(f"{'Saved. ' if changes else ''}Settings for guild {args.guild}:")
    for key, value in shown.items():
        print(f"  {key:<15} {value}")
    return 0


async def cmd_dictionary(args: argparse.Namespace, config: Config) -> int:
    if args.action == "list":
        entries = {}
        if library_exists(config):
            store = open_store(config, writes=False)
            try:
                entries = store.dictionary(args.guild)
            finally:
                store.close()
        if args.json:
            print_json([{"word": word, "spoken_as": spoken} for word, spoken in entries.items()])
        elif entries:
            for word, spoken in entries.items():
                print(f"{word}\t{spoken}")
        else:  # on stdout, as `voices` says it has none
            print(
                f"Guild {args.guild} has no pronunciations. Add one with: voicebot dictionary add "
                f"--guild {args.guild} WORD SPOKEN_AS"
            )
        return 0
    store = open_store(config, writes=True)
    try:
        if args.action == "add":
            word, spoken, was = store.add_pronunciation(args.guild, args.word, args.spoken_as)
            if was is None:
                print(f"Guild {args.guild} now says “{word}” as “{spoken}”.")
            elif was == spoken:
                print(f"Guild {args.guild} already says “{word}” as “{spoken}”.")
            else:
                print(f"Replaced “{word}”: guild {args.guild} now says it as “{spoken}” (was “{was}”).")
        else:
            removed = store.remove_pronunciation(args.guild, args.word)
            print(f"Guild {args.guild} says “{removed}” as written again.")
    finally:
        store.close()
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    settings = commands.add_parser(
        "settings",
        help="show a guild's settings, or change them",
        epilog=examples(
            "voicebot settings --guild 123",
            "voicebot settings --guild 123 --clone-role 789 --cooldown 10",
            "voicebot settings --guild 123 --everyone-may-clone --daily-quota 0 --json",
        ),
    )
    guild_option(settings)
    role = settings.add_mutually_exclusive_group()
    role.add_argument("--clone-role", type=role_id, metavar="ROLE_ID", help="only this role may clone")
    role.add_argument("--everyone-may-clone", action="store_true", help="anyone may clone")
    settings.add_argument(
        "--max-text", type=ranged(10, 20_000), metavar="N", help="characters per /say (10–20000)"
    )
    settings.add_argument(
        "--cooldown", type=ranged(0, 3600), metavar="S", help="seconds between a user's /say (0–3600)"
    )
    settings.add_argument(
        "--daily-quota",
        type=ranged(0, 1440),
        metavar="MIN",
        help="minutes of speech per UTC day (0–1440; 0: no limit)",
    )
    settings.add_argument("--default-mode", choices=MODES, help="where /say speaks by default")
    settings.add_argument("--file-format", choices=FILE_FORMATS, help="audio format of file replies")
    settings.add_argument(
        "--speaker-consent",
        choices=("on", "off"),
        help="a new voice waits for its speaker's own consent voice message (default on)",
    )
    json_option(settings)
    library_command(settings, cmd_settings)

    uses = {
        "list": ("show the guild's dictionary", "voicebot dictionary list --guild 123 --json"),
        "add": ("say WORD as SPOKEN_AS", "voicebot dictionary add --guild 123 GIF jiff"),
        "remove": ("say WORD as written", "voicebot dictionary remove --guild 123 gif"),
    }
    dictionary = commands.add_parser(
        "dictionary",
        help="list, add or remove pronunciations for a guild",
        epilog=examples(*(example for _, example in uses.values())),
    )
    entries = dictionary.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    for action, (about, example) in uses.items():
        sub = entries.add_parser(action, help=about, epilog=examples(example))
        guild_option(sub)
        if action == "list":
            json_option(sub)
        else:
            sub.add_argument("word", help="the word as people type it")
        if action == "add":
            sub.add_argument("spoken_as", help="how it should be said")
    library_command(dictionary, cmd_dictionary)
