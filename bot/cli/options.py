"""The argparse pieces every `voicebot` command family shares: the parser class, the argument types,
the options several commands take, and the top-level help's examples, exit codes and environment."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

from bot.choices import BACKENDS
from bot.config import _ENV, Config

LibraryHandler = Callable[[argparse.Namespace, Config], Coroutine[Any, Any, int]]

ENV_HELP = {
    "data_dir": "voice library folder (default ./data; --data-dir wins)",
    "backend": "speech backend: modal or local (default modal)",
    "weights_dir": "weights folder for the local backend",
    "device": "local backend device: cpu, cuda or cuda:N",
    "modal_app": "name of the deployed Modal app (default echo-voicebot)",
    "backend_timeout_s": "seconds to wait for the speech backend (default 180)",
    "max_text_chars": "longest text to speak, in characters (default 2000)",
    "max_voices_per_guild": "voices per guild (default 25)",
    "max_reference_bytes": "largest reference file, in bytes (default 25 MiB)",
    "discord_token": "the bot's token (run, sync, doctor)",
    "dev_guild_id": "sync commands to this guild only (instant), not globally",
    "idle_leave_s": "seconds before leaving a silent voice channel (default 300)",
    "keep_warm_in_voice": "keep one Modal GPU warm while in voice (default false)",
    "discord_api_base": "tests only: the loopback Discord's API",
    "discord_gateway": "tests only: the loopback Discord's gateway",
    "voice_tls_verify": "tests only: verify voice TLS (default true)",
}

EXAMPLES = """\
examples:
  voicebot clone --guild 123 --name Ada --consent 456 ada.ogg
  voicebot say --guild 123 --voice Ada --out hello.ogg "Hello there."
  voicebot say --guild 123 --voice Ada --out - "Hi." | mpv -
  voicebot --data-dir /srv/voicebot voices --guild 123
  voicebot export --guild 123 --out guild-123.tar
  voicebot deploy && voicebot doctor

exit status: 0 done · 1 a service (speech backend, Discord, Modal, Hugging Face) failed · 2 bad input
  (nothing written) · 65 voicebot.db is damaged or from a newer voicebot · 66 a voice's files are
  missing or damaged · 73 --out can't be written · 74 disk full or I/O error · 75 the library is
  locked by another program (try again) · 77 the library is read-only.
"""


def environment() -> str:
    width = max(len(var) for var in _ENV.values())
    lines = [f"  {var:<{width}}  {ENV_HELP.get(field, '')}".rstrip() for field, var in _ENV.items()]
    lines.append(f"  {'MODAL_TOKEN_ID/SECRET':<{width}}  Modal credentials (or `uv run modal token new`)")
    lines.append(f"  {'HF_TOKEN':<{width}}  Hugging Face token for `voicebot weights fetch` (optional)")
    return "environment (also read from ./.env):\n" + "\n".join(lines) + "\n"


def voicebot_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("echo-voicebot")
    except PackageNotFoundError:
        return "unknown"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One plain line, not argparse's usage block: what was wrong, and where to look.
        self.exit(2, f"voicebot: {message} (see {self.prog} --help)\n")


def library_command(
    parser: argparse.ArgumentParser, handler: LibraryHandler, *, needs_backend: bool = False
) -> None:
    """`handler(args, config)` runs this command, which works on the voice library. Only commands that
    make speech (`needs_backend`) have the backend's own settings checked before they start. Commands
    that never open the library (`deploy`, `weights`) set a plain `handler(args)` of their own."""
    parser.set_defaults(handler=handler, needs_backend=needs_backend)


# --- argument types ---------------------------------------------------------------------------


MAX_DISCORD_ID = 2**63 - 1  # SQLite's largest integer; Discord's snowflakes stay below it until 2084


def _discord_id(kind: str) -> Callable[[str], int]:
    """An argument type for a Discord id: a whole number from 1 to 2^63-1. Anything else is a typo
    (0, a negative number, a name), refused here with one phrasing for every kind of id."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 0 < value <= MAX_DISCORD_ID:
            shown = repr(raw) if not raw.lstrip("-").isdigit() else raw
            raise argparse.ArgumentTypeError(
                f"{shown} is not a {kind}: Discord ids are positive whole numbers below 2^63, "
                "like 123456789012345678"
            )
        return value

    parse.__name__ = kind.replace(" ", "_")
    return parse


guild_id = _discord_id("guild id")
user_id = _discord_id("Discord user id")
role_id = _discord_id("role id")


def device(raw: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", raw):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a device; use cpu, cuda or cuda:N")
    return raw


def ranged(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{raw} is out of range; allowed is {low} to {high}")
        return value

    return parse


# --- options several commands take -----------------------------------------------------------


def data_dir_option(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # On a subcommand the default is left unset, so it never overwrites a --data-dir given before it.
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        metavar="DIR",
        help="voice library folder (default: $VOICEBOT_DATA_DIR or ./data)",
    )


def speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, help="speech backend (default: $VOICEBOT_BACKEND or modal)"
    )
    parser.add_argument(
        "--weights", type=Path, metavar="DIR", help="weights folder for --backend local ($ECHO_WEIGHTS_DIR)"
    )
    parser.add_argument(
        "--device", type=device, help="local backend device: cpu, cuda or cuda:N (default: cuda if present)"
    )


def guild_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--guild", type=guild_id, required=True, metavar="ID", help="the server's (guild's) id"
    )


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
