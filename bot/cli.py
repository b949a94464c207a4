"""`voicebot`: run the bot, or manage a server's voices from a terminal.

    voicebot clone  --guild G --name N [--owner U] FILE
    voicebot say    --guild G --voice N --out PATH [--seed S] [--force-speaker] TEXT
    voicebot voices --guild G [--json]
    voicebot delete --guild G --voice N
    voicebot doctor [--repair]
    voicebot run      (also `python -m bot`): connect to Discord and serve the commands
    voicebot sync     register the slash commands (globally, or to VOICEBOT_DEV_GUILD) and exit

Every command takes --data-dir DIR (default ./data), --backend modal|local, --weights DIR (local).
`voices`, `say` and `doctor` (without --repair) only read the library: they never tidy or repair it.

Exit status, with one line on stderr saying what happened and what to do (sysexits.h numbers):
  0 done · 1 the speech backend failed · 2 bad input (nothing written) · 65 voicebot.db is damaged
  · 66 a voice's files are missing or damaged · 73 --out can't be written · 74 disk full or I/O error
  · 77 the library is read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

from bot import audio, text
from bot.config import Config, check, load_config
from bot.errors import (
    BackendError,
    FileTooLarge,
    InvalidInput,
    LibraryError,
    OutputNotWritable,
    VoiceNotFound,
)
from bot.store import VoiceStore, clean_name

FORMATS_BY_SUFFIX = {".ogg": "ogg", ".opus": "ogg", ".oga": "ogg", ".mp3": "mp3", ".wav": "wav"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One plain line, not argparse's usage block: what was wrong, and where to look.
        self.exit(2, f"voicebot: {message} (see {self.prog} --help)\n")


def _common(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    # A nested parser's defaults would overwrite what its parent parsed: it leaves unset ones out.
    default = argparse.SUPPRESS if nested else None
    parser.add_argument(
        "--data-dir", type=Path, default=default, help="voice library folder (default: ./data)"
    )
    parser.add_argument(
        "--backend", choices=("modal", "local"), default=default, help="speech backend (default: modal)"
    )
    parser.add_argument("--weights", type=Path, default=default, help="weights folder for --backend local")
    parser.add_argument(
        "--device", default=default, help="local backend device: cuda or cpu (default: cuda if present)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voicebot", description="Echo voice-clone bot for Discord.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    clone = commands.add_parser("clone", help="clone a voice from an audio file")
    clone.add_argument("--guild", type=int, required=True, help="server (guild) id")
    clone.add_argument("--name", required=True, help="1–32 letters, digits, spaces, - or _")
    clone.add_argument("--owner", type=int, default=0, help="Discord user id of the owner (default 0)")
    clone.add_argument("file", type=Path, help="WAV, MP3, Ogg/Opus, M4A, FLAC, WebM or MP4; 5 s to 5 min")

    say = commands.add_parser("say", help="speak text in a voice, to a file")
    say.add_argument("--guild", type=int, required=True)
    say.add_argument("--voice", required=True, help="voice name")
    say.add_argument("--out", type=Path, required=True, help="output file: .ogg, .mp3 or .wav")
    say.add_argument("--seed", type=int, help="same seed, same audio (default: random)")
    say.add_argument("--force-speaker", action="store_true", help="hold the voice tighter")
    say.add_argument("--user", type=int, default=0, help="user id the usage is recorded under")
    say.add_argument("text", help="what to say")

    voices = commands.add_parser("voices", help="list a server's voices")
    voices.add_argument("--guild", type=int, required=True)
    voices.add_argument("--json", action="store_true", help="machine-readable output")

    delete = commands.add_parser("delete", help="delete a voice and its files")
    delete.add_argument("--guild", type=int, required=True)
    delete.add_argument("--voice", required=True)

    dictionary = commands.add_parser("dictionary", help="list, add or remove pronunciations for a guild")
    actions = dictionary.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, about in (
        ("list", "show the guild's dictionary"),
        ("add", "say WORD as SPOKEN_AS"),
        ("remove", "say WORD as written"),
    ):
        sub = actions.add_parser(action, help=about)
        sub.add_argument("--guild", type=int, required=True, help="server (guild) id")
        if action != "list":
            sub.add_argument("word", help="the word as people type it")
        if action == "add":
            sub.add_argument("spoken_as", help="how it should be said")
        _common(sub, nested=True)

    doctor = commands.add_parser("doctor", help="check the configuration, data and backend; say what to fix")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="also tidy interrupted writes and re-encode damaged voices from their kept recordings",
    )
    commands.add_parser("run", help="connect to Discord and serve the commands (Ctrl-C stops it)")
    commands.add_parser("sync", help="register the slash commands with Discord, then exit")
    for sub in commands.choices.values():
        _common(sub)
    return parser


def _config(args: argparse.Namespace) -> Config:
    config = load_config().with_overrides(
        data_dir=args.data_dir, backend=args.backend, weights_dir=args.weights, device=args.device
    )
    return check(config)


def _backend(config: Config):
    from bot.tts import create_backend

    return create_backend(
        config.backend,
        weights_dir=config.weights_dir,
        device=config.device,
        app_name=config.modal_app,
        timeout=config.backend_timeout_s,
    )


def _library_exists(config: Config) -> bool:
    return (config.data_dir / "voicebot.db").exists()


def _store(config: Config, *, writes: bool) -> VoiceStore:
    """`writes=False` for commands that only read: they open without the start-up sweep."""
    return VoiceStore(config.data_dir, max_voices_per_guild=config.max_voices_per_guild, sweep=writes)


def _output_error(path: Path, exc: OSError) -> OutputNotWritable:
    if path.is_dir():
        return OutputNotWritable(path, "it is a folder")
    reason = exc.strerror or str(exc)
    return OutputNotWritable(path, reason[0].lower() + reason[1:])


def _check_writable(path: Path) -> None:
    """Refuse an --out that can't be written before any speech is made for it (creating nothing)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is a file, not a folder")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".voicebot-", suffix=".part"):
            pass
    except OSError as exc:
        raise _output_error(path, exc) from None


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the user expects a normal file
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- commands ---------------------------------------------------------------------------------


async def cmd_clone(args: argparse.Namespace, config: Config) -> int:
    from bot.cloning import clone_reference

    name = clean_name(args.name)
    if not args.file.is_file():
        raise InvalidInput(f"There is no file at {args.file}.")
    size = args.file.stat().st_size
    if size > config.max_reference_bytes:
        raise FileTooLarge(size, config.max_reference_bytes)
    # Every check that needs no library runs before the library is opened (and so created).
    reference = audio.load_reference(args.file.read_bytes(), max_bytes=config.max_reference_bytes)
    store = _store(config, writes=True)
    backend = _backend(config)
    try:
        cloned = await clone_reference(
            store,
            backend,
            reference,
            guild_id=args.guild,
            name=name,
            owner_id=args.owner,
            consent_by=args.owner,
            source=f"cli:{args.file.name}",
        )
    finally:
        await backend.close()
        store.close()
    voice = cloned.voice
    print(
        f"Cloned “{voice.name}” in guild {voice.guild_id} from {cloned.format}, "
        f"{voice.duration_s:.1f} s of reference (id {voice.id}, model {voice.revision})."
    )
    return 0


async def cmd_say(args: argparse.Namespace, config: Config) -> int:
    from bot import speech

    fmt = FORMATS_BY_SUFFIX.get(args.out.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"Can't write “{args.out.suffix or args.out.name}” files; use .ogg, .mp3 or .wav.")
    text.prepare(args.text, max_chars=config.max_text_chars)  # bad text: refuse before anything else
    if not _library_exists(config):
        raise VoiceNotFound(args.voice)
    store = _store(config, writes=False)
    backend = None
    try:
        request = speech.plan(
            store,
            guild_id=args.guild,
            user_id=args.user,
            voice_name=args.voice,
            words=args.text,
            max_chars=config.max_text_chars,
            params=speech.settings(args.force_speaker),
            seed=args.seed,
        )
        _check_writable(args.out)
        backend = _backend(config)
        result = await speech.speak(store, backend, request)
        data = await asyncio.to_thread(speech.render, result, fmt)
    finally:
        if backend is not None:
            await backend.close()
        store.close()
    _write_atomically(args.out, data)
    chunks = len(request.chunks)
    print(
        f"Wrote {args.out}: {result.audio_seconds:.1f} s in “{request.voice.name}”'s voice "
        f"({chunks} chunk{'s' * (chunks != 1)}, seed {request.seed})."
    )
    return 0


async def cmd_voices(args: argparse.Namespace, config: Config) -> int:
    voices = []
    if _library_exists(config):
        store = _store(config, writes=False)
        try:
            voices = store.list(args.guild)
        finally:
            store.close()
    if args.json:
        print(json.dumps([asdict(v) for v in voices], indent=2))
    elif not voices:
        print(
            f"Guild {args.guild} has no voices yet. Add one with: voicebot clone --guild {args.guild} "
            "--name NAME FILE"
        )
    else:
        for v in voices:
            print(f"{v.name:<32}  {v.duration_s:6.1f} s  owner {v.owner_id}  {v.created_at}  {v.id}")
    return 0


async def cmd_delete(args: argparse.Namespace, config: Config) -> int:
    if not _library_exists(config):
        raise VoiceNotFound(args.voice)
    store = _store(config, writes=True)
    try:
        voice = store.delete(args.guild, args.voice)
    finally:
        store.close()
    print(f"Deleted “{voice.name}” and its files from guild {voice.guild_id}.")
    return 0


async def cmd_dictionary(args: argparse.Namespace, config: Config) -> int:
    if args.action == "list":
        entries = {}
        if _library_exists(config):
            store = _store(config, writes=False)
            try:
                entries = store.dictionary(args.guild)
            finally:
                store.close()
        for word, spoken in entries.items():
            print(f"{word}\t{spoken}")
        if not entries:
            print(f"Guild {args.guild} has no pronunciations.", file=sys.stderr)
        return 0
    store = _store(config, writes=True)
    try:
        if args.action == "add":
            word, spoken = store.add_pronunciation(args.guild, args.word, args.spoken_as)
            print(f"Guild {args.guild} now says “{word}” as “{spoken}”.")
        else:
            removed = store.remove_pronunciation(args.guild, args.word)
            print(f"Guild {args.guild} says “{removed}” as written again.")
    finally:
        store.close()
    return 0


async def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from bot.doctor import diagnose

    problems = 0
    async for ok, line in diagnose(config, repair=args.repair):
        print(("ok   " if ok else "FIX  ") + line)
        problems += not ok
    print("All good." if not problems else f"{problems} thing(s) to fix, see FIX lines above.")
    return 0 if not problems else 1


async def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from bot.client import run_bot

    if _library_exists(config):  # a damaged library is one line now, not a traceback after login
        store = await asyncio.to_thread(_store, config, writes=False)
        await asyncio.to_thread(store.close)
    logging.getLogger().setLevel(logging.INFO)
    await run_bot(config)
    return 0


async def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    from bot.client import run_bot

    await run_bot(config, sync_only=True)
    scope = f"guild {config.dev_guild_id}" if config.dev_guild_id else "all servers (global)"
    print(f"Slash commands registered for {scope}.")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], Awaitable[int]]] = {
    "clone": cmd_clone,
    "say": cmd_say,
    "voices": cmd_voices,
    "delete": cmd_delete,
    "dictionary": cmd_dictionary,
    "doctor": cmd_doctor,
    "run": cmd_run,
    "sync": cmd_sync,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = _config(args)
        return asyncio.run(COMMANDS[args.command](args, config))
    except InvalidInput as exc:
        print(f"voicebot: {exc.message}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"voicebot: {exc.message} {exc.admin_hint}".rstrip(), file=sys.stderr)
        return 1
    except LibraryError as exc:
        print(f"voicebot: {exc.admin_message}", file=sys.stderr)
        return exc.exit_code
    except OutputNotWritable as exc:
        print(f"voicebot: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except sqlite3.Error as exc:  # what faults.library_error has no better words for (e.g. locked)
        print(f"voicebot: the voice library failed: {exc}. See `voicebot doctor`.", file=sys.stderr)
        return 74  # EX_IOERR
    except BrokenPipeError:  # `voicebot voices | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet
        return 128 + 13  # as if killed by SIGPIPE, like other command-line tools
    except OSError as exc:  # an input file or folder the machine would not read or write
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"voicebot: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 74  # EX_IOERR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
