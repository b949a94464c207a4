"""`voicebot apikey create|list|revoke`: a guild's keys for the HTTP API (`voicebot api`), as `/apikey`
manages them on Discord (bot.store.api_keys).

`create` prints the new key alone on stdout, one line, so `KEY=$(voicebot apikey create --guild 1)`
works; it is shown this once (only its hash is kept). `list` and `revoke` never show a key, only its id
and name. Exit 0 when done, 2 on bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from datetime import UTC, datetime

from bot.cli.common import library_exists, open_store, print_json, stderr_is_terminal
from bot.cli.options import Parser, examples, guild_option, json_option, library_command, user_id
from bot.config import Config
from bot.errors import ApiKeyNotFound
from bot.store.api_keys import MAX_NAME_CHARS, clean_key_name, named_as


def _when(at: float | None) -> str:
    return "never" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_args(args: argparse.Namespace) -> None:
    """A bad --name is named before the library is opened (or made)."""
    if args.action == "create":
        clean_key_name(args.name)


async def cmd_apikey(args: argparse.Namespace, config: Config) -> int:
    if args.action == "list":
        _list(args, config)
        return 0
    if args.action == "revoke" and not library_exists(config):
        raise ApiKeyNotFound(named_as(args.key))
    store = open_store(config, writes=True)
    try:
        if args.action == "create":
            key, full_key = store.create_api_key(
                args.guild, created_by=args.owner or 0, name=args.name, actor="cli"
            )
            print(full_key, flush=True)  # alone on stdout, for `KEY=$(voicebot apikey create …)`
            if stderr_is_terminal():
                print(
                    f"voicebot: API key {key.id} (“{key.name}”) of guild {args.guild}: shown once, "
                    "store it now.",
                    file=sys.stderr,
                )
        else:
            revoked = store.revoke_api_key(args.guild, args.key, actor="cli")
            print(
                f"Revoked API key {revoked.id} (“{revoked.name}”) of guild {args.guild}: "
                "the API stops taking it within 5 s."
            )
    finally:
        store.close()
    return 0


def _list(args: argparse.Namespace, config: Config) -> None:
    keys = []
    if library_exists(config):
        store = open_store(config, writes=False)
        try:
            keys = store.api_keys(args.guild)
        finally:
            store.close()
    if args.json:
        print_json([asdict(key) for key in keys])
    elif not keys:  # on stdout, as `voices` says it has none
        print(
            f"Guild {args.guild} has no API keys. Make one with: voicebot apikey create --guild {args.guild}"
        )
    else:
        width = max(len("NAME"), *(len(key.name) for key in keys))
        print(f"{'ID':<16}  {'NAME':<{width}}  {'OWNER':<20}  {'CREATED':<20}  LAST USED")
        for key in keys:
            owner = str(key.created_by or "terminal")
            print(
                f"{key.id:<16}  {key.name:<{width}}  {owner:<20}  {_when(key.created_at):<20}  "
                f"{_when(key.last_used_at)}"
            )


def add_parsers(commands: argparse._SubParsersAction) -> None:
    uses = {
        "create": ("make a key and print it (shown once)", "voicebot apikey create --guild 123 --name CI"),
        "list": ("show the guild's keys (never the keys themselves)", "voicebot apikey list --guild 123"),
        "revoke": (
            "delete a key: the API stops taking it within 5 s",
            "voicebot apikey revoke --guild 123 CI",
        ),
    }
    family = commands.add_parser(
        "apikey",
        help="create, list or revoke a guild's keys for the HTTP API",
        epilog=examples(*(example for _, example in uses.values())),
    )
    actions = family.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    for action, (about, example) in uses.items():
        sub = actions.add_parser(action, help=about, epilog=examples(example))
        guild_option(sub)
        if action == "create":
            sub.add_argument(
                "--name", default="", metavar="NAME", help=f"a label, up to {MAX_NAME_CHARS} characters"
            )
            sub.add_argument(
                "--owner",
                type=user_id,
                metavar="USER_ID",
                help="the member the key's usage is charged to, with the guild (default: none)",
            )
        elif action == "list":
            json_option(sub)
        else:
            sub.add_argument(
                "key", metavar="KEY", help="the key's id (key_…) or name, as `apikey list` shows"
            )
    library_command(family, cmd_apikey, check_args=_check_args)
