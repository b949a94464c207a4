"""`voicebot verify FILE`: whether an audio file carries the watermark this bot puts on all its speech.

The check runs on the engine side (the configured backend: the Modal app, or the local engine), as
Discord's "Check for AI voice" does. Exit 0: watermark found; 1: not found; 2: a path or file that
can't be checked (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.audio.clip import WATERMARK_THRESHOLD, load_clip
from bot.cli.common import Progress, create_backend, print_json
from bot.cli.options import examples, json_option, library_command, speech_options
from bot.config import Config
from bot.errors import InvalidInput

FOUND, NOT_FOUND = 0, 1


def _check_verify_args(args: argparse.Namespace) -> None:
    if not args.file.is_file():
        what = "is a folder, not a file" if args.file.is_dir() else "does not exist"
        raise InvalidInput(f"{args.file} {what}: give the path of an audio file to check.")


def verdict(name: str, confidence: float) -> str:
    """The one line `verify` prints."""
    if confidence >= WATERMARK_THRESHOLD:
        return f"{name}: carries this bot's AI-voice watermark (confidence {confidence:.2f})"
    return f"{name}: no watermark found (confidence {confidence:.2f})"


async def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    data = args.file.read_bytes()
    pcm = await asyncio.to_thread(load_clip, data, max_bytes=config.max_reference_bytes)
    progress = Progress()
    progress(f"Checking {args.file.name} with the {config.backend} backend…")
    backend = create_backend(config)
    try:
        confidence = await backend.watermark_confidence(pcm)
    finally:
        await backend.close()
    found = confidence >= WATERMARK_THRESHOLD
    if args.json:
        print_json({"file": str(args.file), "confidence": round(confidence, 4), "found": found})
    else:
        print(verdict(str(args.file), confidence))
    return FOUND if found else NOT_FOUND


def add_parsers(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify",
        help="check an audio file for this bot's AI-voice watermark (exit 0 found, 1 not)",
        epilog=examples(
            "voicebot verify hello.ogg",
            "voicebot verify --json clip.mp3",
            "voicebot verify --backend local --weights ./weights clip.wav",
        ),
    )
    verify.add_argument("file", type=Path, help="any audio or video file, at least 0.5 s long")
    json_option(verify)
    speech_options(verify)
    library_command(verify, cmd_verify, needs_backend=True, check_args=_check_verify_args)
