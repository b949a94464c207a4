"""`voicebot reencode`: re-encode, now, the voices whose latent another model revision made.

What a running bot does by itself in the background after the model changes (`bot.reencode`), in the
foreground and without its pauses: each voice from its kept recording, one at a time. Stopping it loses
nothing; the next run continues where it stopped. A voice whose recording is missing keeps its old
latent (it still speaks), is named in the summary and is not a failure: restoring the recording and
running this again is the fix. Exit 0 when every other voice carries the engine's revision, 1 when some
failed (run it again).

Also `voicebot doctor`'s lines on how far the library is toward the engine's revision (`model_findings`).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from bot.cli.common import Progress, create_backend, library_exists, open_store, print_json
from bot.cli.options import examples, guild_id, json_option, library_command, speech_options
from bot.config import Config
from bot.errors import LibraryError
from bot.reencode import ALREADY, DONE, FAILED, GONE, KEPT, Outcome, reencode_voices, stale, survey
from bot.store import Voice
from bot.wording import plural

if TYPE_CHECKING:
    from bot.cli.doctor import Finding

BECAME = {
    DONE: "re-encoded",
    ALREADY: "already re-encoded (by another process)",
    KEPT: "kept its old latent: its recording is missing or damaged",
    FAILED: "failed",
    GONE: "deleted meanwhile",
}


def _voice(voice: Voice) -> str:
    return f"“{voice.name}” ({voice.id}, guild {voice.guild_id})"


async def cmd_reencode(args: argparse.Namespace, config: Config) -> int:
    where = f"guild {args.guild}" if args.guild else "the library"
    if not library_exists(config):
        return _report(args, None, [], [], f"No voices in {where}: nothing to re-encode.")
    progress = Progress()
    store = open_store(config, writes=True)
    backend = create_backend(config)
    try:
        listed = (lambda: store.list(args.guild)) if args.guild else store.all_voices
        voices = await asyncio.to_thread(listed)
        if not voices:
            return _report(args, None, [], [], f"No voices in {where}: nothing to re-encode.")
        progress(f"Asking the {config.backend} backend which model it runs…")
        revision = str((await backend.info())["revision"])
        work = stale(voices, revision)
        progress(f"Model {revision}: {plural(len(work), 'voice')} of {len(voices)} to re-encode.")
        seen = 0

        def on_voice(voice: Voice, what: str, why: str) -> None:
            nonlocal seen
            seen += 1
            detail = f" ({why})" if what == FAILED else ""
            progress(f"{seen} of {len(work)}: {_voice(voice)} {BECAME[what]}{detail}.")

        outcome = await reencode_voices(store, backend, revision, work, actor="cli", on_voice=on_voice)
    finally:
        await backend.close()
        await asyncio.to_thread(store.close)
    return _report(args, outcome, voices, work, "")


def _report(
    args: argparse.Namespace, outcome: Outcome | None, voices: list[Voice], work: list[Voice], empty: str
) -> int:
    """The summary on stdout (or JSON); the exit status: 1 if some voice failed."""
    if outcome is None:
        if args.json:
            print_json(
                {
                    "revision": None,
                    "voices": 0,
                    "current": 0,
                    "reencoded": [],
                    "kept": [],
                    "failed": [],
                    "stopped": None,
                }
            )
        else:
            print(empty)
        return 0
    current = len(voices) - len(work) + len(outcome.done) + outcome.already
    failed = bool(outcome.failed or outcome.stopped)
    if args.json:
        summary: dict[str, Any] = {
            "revision": outcome.revision,
            "voices": len(voices),
            "current": current,
            "reencoded": [voice.id for voice in outcome.done],
            "kept": [_entry(voice) for voice in outcome.kept],
            "failed": [_entry(voice) | {"error": why} for voice, why in outcome.failed],
            "stopped": outcome.stopped,
        }
        print_json(summary)
        return 1 if failed else 0
    if not work:
        print(f"All {plural(len(voices), 'voice')} already carry model {outcome.revision}.")
        return 0
    print(
        f"Model {outcome.revision}: re-encoded {plural(len(outcome.done), 'voice')}; {current} of "
        f"{len(voices)} now carry it."
    )
    for voice in outcome.kept:
        print(
            f"Voice {_voice(voice)} keeps its latent from model {voice.revision}: its recording is missing "
            "or damaged. It still speaks; restore the recording from a backup, then run this again."
        )
    for voice, why in outcome.failed:
        print(f"Voice {_voice(voice)} failed: {why}.")
    if outcome.stopped:
        print(f"Stopped early: {outcome.stopped}.")
    if failed:
        print("Run `voicebot reencode` again to retry; `voicebot doctor` checks the setup.")
    return 1 if failed else 0


def _entry(voice: Voice) -> dict[str, Any]:
    return {"id": voice.id, "guild_id": voice.guild_id, "name": voice.name, "revision": voice.revision}


async def model_findings(config: Config, revision: object) -> list[Finding]:
    """For doctor: how many voices carry the engine's `revision`, how many wait for the re-encoder, and
    which keep an older latent because their recording is missing. Read-only."""
    from bot.cli.doctor import SHOWN, Finding

    if not isinstance(revision, str) or not library_exists(config):
        return []
    try:
        store = await asyncio.to_thread(open_store, config, writes=False)
    except LibraryError:
        return []  # the library's own check says what is wrong with it
    try:
        found = await asyncio.to_thread(survey, store, revision)
    except LibraryError:
        return []
    finally:
        await asyncio.to_thread(store.close)
    if not found.total:
        return []
    if not found.waiting and not found.kept:
        return [
            Finding("ok", f"Model revision {revision}: all {plural(found.total, 'voice')} encoded with it.")
        ]
    line = f"Model revision {revision}: {found.current} of {found.total} voices encoded with it"
    if found.waiting:
        line += (
            f"; {len(found.waiting)} waiting for it (a running bot brings them over in the background; "
            "`voicebot reencode` does it now)"
        )
    if found.kept:
        line += f"; {len(found.kept)} kept their old latent (recording missing)"
    findings = [Finding("note", line + ".")]
    for voice in found.kept[:SHOWN]:
        findings.append(
            Finding(
                "note",
                f"Voice {_voice(voice)} keeps its latent from model {voice.revision}: its recording is "
                "missing, so it can't follow the model. It still speaks; restore the recording from a "
                "backup, then run `voicebot reencode`.",
            )
        )
    if len(found.kept) > SHOWN:
        findings.append(Finding("note", f"… and {len(found.kept) - SHOWN} more like that."))
    return findings


def add_parsers(commands: argparse._SubParsersAction) -> None:
    reencode = commands.add_parser(
        "reencode",
        help="re-encode the voices made by another model revision from their recordings, now",
        epilog=examples(
            "voicebot reencode",
            "voicebot reencode --guild 123 --json",
            "voicebot reencode --backend local --weights ./weights",
        ),
    )
    reencode.add_argument("--guild", type=guild_id, metavar="ID", help="only this server's (guild's) voices")
    json_option(reencode)
    speech_options(reencode)
    library_command(reencode, cmd_reencode, needs_backend=True)
