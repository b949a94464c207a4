"""`voicebot`: run the bot, manage a guild's voices from a terminal, deploy the GPU app, fetch weights.

The parser and the one place errors become a line on stderr; the commands live in `bot.cli_voices`
(the voice library), `bot.cli_ops` (doctor, run, sync, export, import), `bot.deploy` and
`bot.weights_cli`. A bare `voicebot` prints the help and exits 2: it asked for nothing, and a script
that runs it by mistake should notice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from bot import cli_ops, cli_voices
from bot.choices import BACKENDS, FILE_FORMATS, MODES, OUTPUT_FORMATS
from bot.cli_common import device, guild_id, role_id, terminal_message, user_id
from bot.config import _ENV, Config, export_service_credentials, read_dotenv
from bot.errors import BackendError, InvalidInput, LibraryError, OutputNotWritable, VoiceBotError

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


def _environment() -> str:
    width = max(len(var) for var in _ENV.values())
    lines = [f"  {var:<{width}}  {ENV_HELP.get(field, '')}".rstrip() for field, var in _ENV.items()]
    lines.append(f"  {'MODAL_TOKEN_ID/SECRET':<{width}}  Modal credentials (or `uv run modal token new`)")
    lines.append(f"  {'HF_TOKEN':<{width}}  Hugging Face token for `voicebot weights fetch` (optional)")
    return "environment (also read from ./.env):\n" + "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One plain line, not argparse's usage block: what was wrong, and where to look.
        self.exit(2, f"voicebot: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("echo-voicebot")
    except PackageNotFoundError:
        return "unknown"


def _data_dir(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # On a subcommand the default is left unset, so it never overwrites a --data-dir given before it.
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        metavar="DIR",
        help="voice library folder (default: $VOICEBOT_DATA_DIR or ./data)",
    )


def _speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, help="speech backend (default: $VOICEBOT_BACKEND or modal)"
    )
    parser.add_argument(
        "--weights", type=Path, metavar="DIR", help="weights folder for --backend local ($ECHO_WEIGHTS_DIR)"
    )
    parser.add_argument(
        "--device", type=device, help="local backend device: cpu, cuda or cuda:N (default: cuda if present)"
    )


def _guild(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--guild", type=guild_id, required=True, metavar="ID", help="the server's (guild's) id"
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _library_commands(commands: argparse._SubParsersAction) -> None:
    clone = commands.add_parser("clone", help="clone a voice from an audio file")
    _guild(clone)
    clone.add_argument("--name", required=True, help="1–32 letters, digits, spaces, - or _")
    clone.add_argument(
        "--consent",
        type=user_id,
        metavar="USER_ID",
        help="required: the Discord user id of whoever confirms the speaker agreed to be cloned",
    )
    clone.add_argument(
        "--owner", type=user_id, metavar="USER_ID", help="Discord user id of the owner (default: --consent)"
    )
    clone.add_argument("file", type=Path, help="WAV, MP3, Ogg/Opus, M4A, FLAC, WebM or MP4; 5 s to 5 min")
    _json(clone)
    _speech_options(clone)

    say = commands.add_parser("say", help="speak text in a voice, to a file or stdout")
    _guild(say)
    say.add_argument("--voice", required=True, help="voice name")
    say.add_argument(
        "--out", type=Path, required=True, help="output file (.ogg, .mp3 or .wav), or - for stdout"
    )
    say.add_argument("--format", choices=OUTPUT_FORMATS, help="audio format (default: from --out; ogg for -)")
    say.add_argument("--seed", type=int, help="same seed, same audio (default: random)")
    say.add_argument("--force-speaker", action="store_true", help="hold the voice tighter on unusual text")
    say.add_argument(
        "--user", type=user_id, default=0, metavar="USER_ID", help="user id the usage is recorded under"
    )
    say.add_argument("text", help="what to say")
    _json(say)
    _speech_options(say)

    voices = commands.add_parser("voices", help="list a guild's voices")
    _guild(voices)
    _json(voices)

    delete = commands.add_parser("delete", help="delete a voice and its files")
    _guild(delete)
    delete.add_argument("--voice", required=True, help="voice name")

    voice = commands.add_parser("voice", help="rename a voice, show it, or set a user's default")
    actions = voice.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    rename = actions.add_parser("rename", help="give a voice a new name")
    rename.add_argument("new_name", help="1–32 letters, digits, spaces, - or _")
    info = actions.add_parser("info", help="show everything the library knows about a voice")
    _json(info)
    default = actions.add_parser("default", help="set the voice a user's /say uses when none is given")
    default.add_argument(
        "--user", type=user_id, required=True, metavar="USER_ID", help="the member's user id"
    )
    for sub in (rename, info, default):
        _guild(sub)
        sub.add_argument("--voice", required=True, help="voice name")

    settings = commands.add_parser("settings", help="show a guild's settings, or change them")
    _guild(settings)
    role = settings.add_mutually_exclusive_group()
    role.add_argument("--clone-role", type=role_id, metavar="ROLE_ID", help="only this role may clone")
    role.add_argument("--everyone-may-clone", action="store_true", help="anyone may clone")
    settings.add_argument(
        "--max-text", type=_ranged(10, 20_000), metavar="N", help="characters per /say (10–20000)"
    )
    settings.add_argument(
        "--cooldown", type=_ranged(0, 3600), metavar="S", help="seconds between a user's /say (0–3600)"
    )
    settings.add_argument(
        "--daily-quota",
        type=_ranged(0, 1440),
        metavar="MIN",
        help="minutes of speech per UTC day (0–1440; 0: no limit)",
    )
    settings.add_argument("--default-mode", choices=MODES, help="where /say speaks by default")
    settings.add_argument("--file-format", choices=FILE_FORMATS, help="audio format of file replies")
    _json(settings)

    dictionary = commands.add_parser("dictionary", help="list, add or remove pronunciations for a guild")
    entries = dictionary.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    for action, about in (
        ("list", "show the guild's dictionary"),
        ("add", "say WORD as SPOKEN_AS"),
        ("remove", "say WORD as written"),
    ):
        sub = entries.add_parser(action, help=about)
        _guild(sub)
        if action != "list":
            sub.add_argument("word", help="the word as people type it")
        if action == "add":
            sub.add_argument("spoken_as", help="how it should be said")

    export = commands.add_parser("export", help="write a guild's voices to a .tar (backup or move)")
    _guild(export)
    export.add_argument("--out", type=Path, required=True, help="the .tar file to write")
    load = commands.add_parser("import", help="add the voices of an exported .tar to a guild")
    load.add_argument("file", type=Path, help="a .tar written by `voicebot export`")
    load.add_argument("--guild", type=guild_id, metavar="ID", help="target guild (default: the one exported)")
    load.add_argument(
        "--rename", action="store_true", help="give colliding names a -2, -3… suffix instead of refusing"
    )


def _ranged(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{raw} is out of range; allowed is {low} to {high}")
        return value

    return parse


def _service_commands(commands: argparse._SubParsersAction) -> None:
    from bot import deploy, weights_cli

    doctor = commands.add_parser(
        "doctor", help="check Discord, the data and the speech backend; say what to fix"
    )
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="also tidy interrupted writes and re-encode damaged voices from their kept recordings",
    )
    _json(doctor)
    _speech_options(doctor)
    run = commands.add_parser("run", help="connect to Discord and serve the commands (Ctrl-C stops it)")
    _speech_options(run)
    commands.add_parser("sync", help="register the slash commands with Discord, then exit")
    deploy.add_parser(commands, _Parser)
    weights_cli.add_parser(commands, _Parser)


LIBRARY_FREE = ("deploy", "weights")  # commands that never open the voice library


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="voicebot",
        description="Echo voice-clone bot for Discord: run it, manage voices, deploy its GPU app.",
        epilog=EXAMPLES + "\n" + _environment(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicebot {_version()}")
    _data_dir(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _library_commands(commands)
    _service_commands(commands)
    for name, sub in commands.choices.items():
        if name in LIBRARY_FREE:
            continue
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _data_dir(sub)  # `voicebot voice --data-dir X rename …` too
        for leaf in nested[0].choices.values() if nested else [sub]:
            _data_dir(leaf)
            leaf.set_defaults(usage_parser=leaf)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], Coroutine[Any, Any, int]]] = {
    "clone": cli_voices.cmd_clone,
    "say": cli_voices.cmd_say,
    "voices": cli_voices.cmd_voices,
    "delete": cli_voices.cmd_delete,
    "voice": cli_voices.cmd_voice,
    "settings": cli_voices.cmd_settings,
    "dictionary": cli_voices.cmd_dictionary,
    "export": cli_ops.cmd_export,
    "import": cli_ops.cmd_import,
    "doctor": cli_ops.cmd_doctor,
    "run": cli_ops.cmd_run,
    "sync": cli_ops.cmd_sync,
}
NEEDS_BACKEND = ("clone", "say", "run", "sync")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in LIBRARY_FREE:
        return args.handler(args)
    from bot.cli_common import config_for

    config = config_for(args, needs_backend=args.command in NEEDS_BACKEND)
    return asyncio.run(COMMANDS[args.command](args, config))


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

    def fail(message: str, code: int) -> int:
        print(f"voicebot: {message}", file=sys.stderr)
        return code

    try:
        return _dispatch(args)
    except InvalidInput as exc:
        return fail(terminal_message(exc, args), 2)
    except BackendError as exc:
        return fail(terminal_message(exc, args), 1)
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
