"""`voicebot clone|say|voices|delete|voice|settings|dictionary`: a guild's voice library from a terminal.

Each command is `async def cmd_x(args, config) -> int`; errors are raised as `bot.errors` types and
worded for the terminal by `bot.cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict

from bot import audio, text
from bot.cli_common import (
    Progress,
    check_writable,
    create_backend,
    library_exists,
    open_store,
    write_atomically,
)
from bot.config import Config
from bot.errors import ConsentRequired, FileTooLarge, InvalidInput, OutputNotWritable, VoiceNotFound
from bot.store import clean_name
from bot.wording import plural

audit = logging.getLogger("bot.audit")

FORMATS_BY_SUFFIX = {".ogg": "ogg", ".opus": "ogg", ".oga": "ogg", ".mp3": "mp3", ".wav": "wav"}


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


async def _warm(backend: object, progress: Progress, config: Config) -> None:
    """Load the model now, so the progress line says what the wait is for."""
    load = getattr(backend, "load", None)  # the local backend loads its weights lazily
    if load is not None:
        progress(f"Loading the model from {config.weights_dir} on {config.device or 'the default device'}…")
        await load()


async def cmd_clone(args: argparse.Namespace, config: Config) -> int:
    from bot.cloning import clone_reference

    if args.consent is None:
        raise ConsentRequired()
    owner = args.owner if args.owner is not None else args.consent
    name = clean_name(args.name)
    if not args.file.is_file():
        what = "is a folder, not a file" if args.file.is_dir() else "does not exist"
        raise InvalidInput(f"{args.file} {what}: give the recording's path.")
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
    audit.info(
        "CLI clone: voice %s in guild %s, owner %s, consent by %s", voice.id, args.guild, owner, args.consent
    )
    if args.json:
        _print_json({**asdict(voice), "format": cloned.format})
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
        what = f"“{args.out.suffix}” files" if args.out.suffix else f"{args.out.name} (no file type)"
        raise InvalidInput(f"Can't write {what}; end --out in .ogg, .mp3 or .wav (or pass --format).")
    return fmt


async def cmd_say(args: argparse.Namespace, config: Config) -> int:
    from bot import speech

    to_stdout = str(args.out) == "-"
    if to_stdout and args.json:
        raise InvalidInput("--out - and --json both write to stdout; choose one.")
    fmt = _format_for(args)
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
        _print_json(summary)
    else:
        print(line)
    return 0


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
        _print_json([asdict(v) for v in voices])
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
    audit.info("CLI delete: voice %s in guild %s", voice.id, voice.guild_id)
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
            audit.info("CLI rename: voice %s in guild %s", voice.id, args.guild)
            print(f"Renamed “{old}” to “{voice.name}” in guild {args.guild}.")
        elif args.action == "default":
            voice = store.set_default_voice(args.guild, args.user, args.voice)
            print(f"User {args.user}'s default voice in guild {args.guild} is now “{voice.name}”.")
        else:
            voice = store.get(args.guild, args.voice)
            if args.json:
                _print_json(asdict(voice))
            else:
                for key, value in asdict(voice).items():
                    print(f"{key:<11} {value}")
    finally:
        store.close()
    return 0


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
        audit.info("CLI settings: guild %s changed %s", args.guild, ", ".join(sorted(changes)))
    if args.json:
        _print_json(asdict(settings))
        return 0
    shown = {
        "clone role": settings.clone_role_id or "everyone may clone",
        "max text": f"{settings.max_text_chars or config.max_text_chars} characters",
        "cooldown": f"{settings.cooldown_s:g} s",
        "daily quota": f"{settings.daily_quota_s / 60:g} min" if settings.daily_quota_s else "no limit",
        "default mode": settings.default_mode,
        "file format": settings.file_format,
    }
    print(f"{'Saved. ' if changes else ''}Settings for guild {args.guild}:")
    for key, value in shown.items():
        print(f"  {key:<13} {value}")
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
        for word, spoken in entries.items():
            print(f"{word}\t{spoken}")
        if not entries:
            print(f"Guild {args.guild} has no pronunciations.", file=sys.stderr)
        return 0
    store = open_store(config, writes=True)
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
