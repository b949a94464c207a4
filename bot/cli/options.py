"""The argparse pieces every `voicebot` command family shares: the parser class, the argument types,
the options several commands take, and the top-level help's examples, exit codes and environment."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from gettext import gettext
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
    "purge_grace_days": "days a server's data is kept after the bot leaves it (default 30)",
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


def examples(*invocations: str) -> str:
    """A command's help epilog: a few real invocations, one a line."""
    return "examples:\n" + "".join(f"  {line}\n" for line in invocations)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that text with line breaks of its own (a command's examples) keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text.strip("\n"):
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


# argparse's own words (as translated) for required arguments left out
_MISSING = gettext("the following arguments are required: %s").split("%s")[0]


class _ProbeFailed(Exception):
    """A parse made only to find unknown options hit another error: the first error stands."""


class Parser(argparse.ArgumentParser):
    _probing = False  # shared by every parser: the nested one a probe runs must not exit either

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._argv: list[str] = []
        self._shown_required: list[argparse.Action] = []

    def parse_known_args(  # type: ignore[override]  # one signature for typeshed's overloads
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        self._argv = list(sys.argv[1:] if args is None else args)  # what error() looks through again
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        if Parser._probing:
            raise _ProbeFailed(message)
        if message.startswith(_MISSING) and (unknown := self._unrecognized()):
            message = f"unrecognized arguments: {' '.join(unknown)}"
        # One plain line, not argparse's usage block: what was wrong, and where to look.
        self.exit(2, f"voicebot: {message} (see {self.prog} --help)\n")

    def _unrecognized(self) -> list[str]:
        """argv's arguments this parser doesn't know, when one of them is an option. argparse checks for
        missing arguments before it returns unknown ones, so `voicebot --verison` would be told a
        COMMAND is missing: a mistyped option is the cause to name. Found by parsing again with
        nothing required."""
        required = [action for action in self._actions if action.required]
        Parser._probing = True
        try:
            for action in required:
                action.required = False
            _, unknown = super().parse_known_args(self._argv)
        except _ProbeFailed:
            return []
        finally:
            for action in required:
                action.required = True
            Parser._probing = False
        return unknown if any(arg.startswith("-") and arg != "-" for arg in unknown) else []

    def show_required(self, action: argparse.Action) -> None:
        """Show `action` as required in usage and help while the command checks it itself, so that its
        absence is worded as the command words it (`clone`'s --consent) rather than by argparse."""
        self._shown_required.append(action)

    def format_usage(self) -> str:
        with self._required_shown():
            return super().format_usage()

    def format_help(self) -> str:
        with self._required_shown():
            return super().format_help()

    @contextlib.contextmanager
    def _required_shown(self) -> Iterator[None]:
        for action in self._shown_required:
            action.required = True
        try:
            yield
        finally:
            for action in self._shown_required:
                action.required = False


def library_command(
    parser: argparse.ArgumentParser,
    handler: LibraryHandler,
    *,
    needs_backend: bool = False,
    check_args: Callable[[argparse.Namespace], object] | None = None,
) -> None:
    """`handler(args, config)` runs this command, which works on the voice library. Only commands that
    make speech (`needs_backend`) have the backend's set-up checked before they start, and after
    `check_args(args)`, so a mistake on the command line is named before one on the machine. Commands
    that never open the library (`deploy`, `weights`) set a plain `handler(args)` of their own."""
    parser.set_defaults(handler=handler, needs_backend=needs_backend, check_args=check_args)


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


def voice_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--voice", required=True, metavar="NAME_OR_ID", help="the voice's name or id (`voicebot voices`)"
    )


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
