"""`voicebot`: run the bot, manage a guild's voices from a terminal, deploy the GPU app, fetch weights.

The entry point only builds the parser from the command families and dispatches; each family's module
(`bot.cli.speech`, `voices`, `settings`, `apikeys`, `backup`, `privacy`, `service`, `reencode`,
`verify`, `deploy`, `weights`) holds its commands' arguments and the code that runs them. This is the
one place errors become a line on stderr and an exit status. A bare `voicebot` prints the help and exits
2: it asked for nothing, and a script that runs it by mistake should notice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import audit
from bot.cli import (
    apikeys,
    backup,
    deploy,
    privacy,
    reencode,
    service,
    settings,
    speech,
    verify,
    voices,
    weights,
)
from bot.cli.common import config_for, terminal_message
from bot.cli.options import EXAMPLES, Parser, data_dir_option, environment, voicebot_version
from bot.config import export_service_credentials, read_dotenv
from bot.errors import BackendError, InvalidInput, LibraryError, OutputNotWritable, VoiceBotError

# In the order `voicebot --help` lists them; each adds its commands' parsers and their handlers
FAMILIES = (speech, voices, settings, apikeys, backup, privacy, service, reencode, verify, deploy, weights)
LIBRARY_FREE = ("deploy", "weights")  # commands that never open the voice library


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="voicebot",
        description="Echo voice-clone bot for Discord: run it, manage voices, deploy its GPU app.",
        epilog=EXAMPLES + "\n" + environment(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicebot {voicebot_version()}")
    data_dir_option(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for family in FAMILIES:
        family.add_parsers(commands)
    for name, sub in commands.choices.items():
        if name in LIBRARY_FREE:
            continue
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            data_dir_option(sub)  # `voicebot voice --data-dir X rename …` too
        for leaf in nested[0].choices.values() if nested else [sub]:
            data_dir_option(leaf)
            leaf.set_defaults(usage_parser=leaf)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in LIBRARY_FREE:
        return args.handler(args)
    if args.check_args is not None:
        args.check_args(args)
    config = config_for(args, needs_backend=args.needs_backend)
    return asyncio.run(args.handler(args, config))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Before the parser: `deploy`'s flag defaults and `weights fetch` read ECHO_*/HF_*/MODAL_* settings
    export_service_credentials(read_dotenv(Path(".env")), os.environ)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand's parser, so the line points at `voicebot voices --help`
        getattr(args, "usage_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Before the settings are read (a bad one is reported in the format asked for); checked there.
    log_format = os.environ.get("VOICEBOT_LOG_FORMAT") or read_dotenv(Path(".env")).get("VOICEBOT_LOG_FORMAT")
    if log_format in audit.LOG_FORMATS:
        audit.use_format(log_format)

    def fail(message: str, code: int) -> int:
        print(f"voicebot: {message}", file=sys.stderr)
        return code

    try:
        return _dispatch(args)
    except InvalidInput as exc:
        return fail(terminal_message(exc, args), 2)
    except BackendError as exc:  # a setup to fix (no token, no engine extra) is 2, like a bad setting
        return fail(terminal_message(exc, args), getattr(exc, "exit_code", 1))
    except LibraryError as exc:
        return fail(terminal_message(exc, args), exc.exit_code)
    except OutputNotWritable as exc:
        return fail(exc.message, exc.exit_code)
    except VoiceBotError as exc:
        return fail(terminal_message(exc, args), getattr(exc, "exit_code", 1))
    except sqlite3.Error as exc:  # what faults.library_error has no better words for (an I/O error)
        return fail(f"the voice library failed: {exc}. See `voicebot doctor`.", 74)  # EX_IOERR
    except BrokenPipeError:  # `voicebot voices | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet
        return 128 + 13  # as if killed by SIGPIPE, like other command-line tools
    except OSError as exc:  # an input file or folder the machine would not read or write
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(f"{exc.strerror or exc}{where}.", 74)  # EX_IOERR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
