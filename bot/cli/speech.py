"""`voicebot clone|say`: clone a voice from an audio file, and speak text in one to a file or stdout.

Each command is `async def cmd_x(args, config) -> int`; errors are raised as `bot.errors` types and
worded for the terminal by `bot.cli.main`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict
from pathlib import Path

from bot import audio, text
from bot.choices import OUTPUT_FORMATS
from bot.cli.common import (
    Progress,
    check_writable,
    create_backend,
    library_exists,
    open_store,
    print_json,
    write_atomically,
)
from bot.cli.options import (
    examples,
    guild_option,
    json_option,
    library_command,
    speech_options,
    user_id,
    voice_option,
)
from bot.config import Config
from bot.errors import ConsentRequired, FileTooLarge, InvalidInput, OutputNotWritable, VoiceNotFound
from bot.store import clean_name
from bot.wording import plural

FORMATS_BY_SUFFIX = {".ogg": "ogg", ".opus": "ogg", ".oga": "ogg", ".mp3": "mp3", ".wav": "wav"}


async def _warm(backend: object, progress: Progress, config: Config) -> None:
    """Load the model now, so the progress line says what the wait is for."""
    load = getattr(backend, "load", None)  # the local backend loads its weights lazily
    if load is not None:
        chosen_device = getattr(backend, "chosen_device", None)
        device = await asyncio.to_thread(chosen_device) if chosen_device else "its device"
        progress(f"Loading the model from {config.weights_dir} on {device}…")
        await load()


def _check_clone_args(args: argparse.Namespace) -> None:
    """What the command line alone shows is wrong: said before the machine's set-up is looked at."""
    if args.consent is None:
        raise ConsentRequired()
    clean_name(args.name)
    if not args.file.is_file():
        what = "is a folder, not a file" if args.file.is_dir() else "does not exist"
        raise InvalidInput(f"{args.file} {what}: give the recording's path.")


def _check_say_args(args: argparse.Namespace) -> None:
    if str(args.out) == "-" and args.json:
        raise InvalidInput("--out - and --json both write to stdout; choose one.")
    _format_for(args)


async def cmd_clone(args: argparse.Namespace, config: Config) -> int:
    from bot.cloning import clone_reference

    owner = args.owner if args.owner is not None else args.consent
    name = clean_name(args.name)
    size = args.file.stat().st_size
    if size > config.max_reference_bytes:
        raise FileTooLarge(size, config.max_reference_bytes)
    progress = Progress()
    progress(f"Checking {args.file.name}…")
    # Every check that needs no library runs before the library is opened (and so created).
    reference = audio.load_reference(args.file.read_bytes(), max_bytes=config.max_reference_bytes)
    store = open_store(config, writes=True)
    backend = create_backend(config)
    try:
        await asyncio.to_thread(store.check_can_add, args.guild, name)
        await _warm(backend, progress, config)
        progress(f"Encoding {reference.duration_s:.1f} s of reference with the {config.backend} backend…")
        cloned = await clone_reference(
            store,
            backend,
            reference,
            guild_id=args.guild,
            name=name,
            owner_id=owner,
            consent_by=args.consent,
            source=f"cli:{args.file.name}",
        )
    finally:
        await backend.close()
        store.close()
    voice = cloned.voice
    if args.json:
        print_json({**asdict(voice), "format": cloned.format})
    else:
        print(
            f"Cloned “{voice.name}” in guild {voice.guild_id} from {cloned.format}, "
            f"{voice.duration_s:.1f} s of reference (id {voice.id}, model {voice.revision})."
        )
    return 0


def _format_for(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if str(args.out) == "-":
        return "ogg"
    if args.out.is_dir():
        raise OutputNotWritable(args.out, f"it is a folder (name a file in it: {args.out / 'hello.ogg'})")
    fmt = FORMATS_BY_SUFFIX.get(args.out.suffix.lower())
    if fmt is None:
        why = (
            f"“{args.out.suffix}” is not an audio type voicebot writes" if args.out.suffix else "no file type"
        )
        raise InvalidInput(
            f"Can't write {args.out} ({why}); end --out in .ogg, .mp3 or .wav (or pass --format)."
        )
    return fmt


async def cmd_say(args: argparse.Namespace, config: Config) -> int:
    from bot import speech

    to_stdout = str(args.out) == "-"
    fmt = _format_for(args)  # checked already (check_args): here for its value
    text.prepare(args.text, max_chars=config.max_text_chars)  # bad text: refuse before anything else
    if not library_exists(config):
        raise VoiceNotFound(args.voice)
    progress = Progress()
    store = open_store(config, writes=True)  # it records the usage
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
        if not to_stdout:
            check_writable(args.out)
        backend = create_backend(config)
        await _warm(backend, progress, config)
        progress(f"Speaking {plural(len(request.chunks), 'chunk')} in “{request.voice.name}”'s voice…")
        result = await speech.speak(
            store, backend, request, progress=lambda done, total: progress(f"Chunk {done} of {total} spoken.")
        )
        progress(f"Encoding {result.audio_seconds:.1f} s of audio as {fmt.upper()}…")
        data = await asyncio.to_thread(speech.render, result, fmt)
    finally:
        if backend is not None:
            await backend.close()
        store.close()
    chunks = len(request.chunks)
    summary = {
        "out": str(args.out),
        "format": fmt,
        "voice": request.voice.name,
        "guild_id": args.guild,
        "seconds": round(result.audio_seconds, 3),
        "chunks": chunks,
        "seed": request.seed,
    }
    where = "stdout" if to_stdout else str(args.out)
    line = (
        f"Wrote {result.audio_seconds:.1f} s in “{request.voice.name}”'s voice to {where} "
        f"({plural(chunks, 'chunk')}, seed {request.seed})."
    )
    if to_stdout:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        print(line, file=sys.stderr)  # stdout carries the audio and nothing else
        return 0
    write_atomically(args.out, data)
    if args.json:
        print_json(summary)
    else:
        print(line)
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    clone = commands.add_parser(
        "clone",
        help="clone a voice from an audio file",
        epilog=examples(
            "voicebot clone --guild 123 --name Ada --consent 456 ada.ogg",
            "voicebot clone --guild 123 --name Narrator --consent 456 --owner 789 --json narrator.mp3",
            "voicebot clone --guild 123 --name Ada --consent 456 --backend local --weights ./weights ada.ogg",
        ),
    )
    guild_option(clone)
    clone.add_argument("--name", required=True, help="1–32 letters, digits, spaces, - or _")
    consent = clone.add_argument(
        "--consent",
        type=user_id,
        metavar="USER_ID",
        help="required: the Discord user id of whoever confirms the speaker agreed to be cloned",
    )
    clone.show_required(consent)  # checked by cmd_clone, which says why it is needed
    clone.add_argument(
        "--owner", type=user_id, metavar="USER_ID", help="Discord user id of the owner (default: --consent)"
    )
    clone.add_argument("file", type=Path, help="WAV, MP3, Ogg/Opus, M4A, FLAC, WebM or MP4; 5 s to 5 min")
    json_option(clone)
    speech_options(clone)
    library_command(clone, cmd_clone, needs_backend=True, check_args=_check_clone_args)

    say = commands.add_parser(
        "say",
        help="speak text in a voice, to a file or stdout",
        epilog=examples(
            'voicebot say --guild 123 --voice Ada --out hello.ogg "Hello there."',
            'voicebot say --guild 123 --voice 3f9a0c1d2e4b5a6c --out hi.wav --seed 7 "Hi."',
            'voicebot say --guild 123 --voice Ada --out - "Hi." | mpv -',
        ),
    )
    guild_option(say)
    voice_option(say)
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
    json_option(say)
    speech_options(say)
    library_command(say, cmd_say, needs_backend=True, check_args=_check_say_args)
