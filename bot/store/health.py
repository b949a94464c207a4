"""Keeping the library whole: the cheap start-up sweep, and the doctor's full audit.

The sweep runs at every writer's start and touches only what an interrupted write leaves: rows still
'adding' or 'deleting' and the staging folder. It never walks the voices, so it costs the same for one
voice or 250,000, and it never deletes a finished voice's files. The audit walks everything, changes
nothing, and says what a repair would do; only `voicebot doctor` runs it.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.store.files import LATENT, LEGACY_TMP_PREFIX, REFERENCE, STAGING, latent_problem
from bot.store.schema import rows_with_wrong_types
from bot.store.voice import Voice

if TYPE_CHECKING:  # the one engine that keeps files in folders: it calls these, they only read it
    from bot.store.sqlite import VoiceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What a sweep tidied: adds that never finished (never confirmed to anyone) undone, adds whose files
    were all in place rolled forward, deletes finished, staged folders removed."""

    undone_adds: int = 0
    finished_deletes: int = 0
    staging_removed: int = 0
    finished_adds: int = 0

    def __bool__(self) -> bool:
        return bool(self.undone_adds or self.finished_deletes or self.staging_removed or self.finished_adds)


def remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def holds_voices(voices_dir: Path) -> bool:
    """Whether any guild folder under voices/ has a voice folder in it."""
    if not voices_dir.is_dir():
        return False
    return any(g.is_dir() and g.name.isdigit() and any(g.iterdir()) for g in voices_dir.iterdir())


def _temporary_folders(store: VoiceStore, *, legacy: bool) -> list[Path]:
    """Staged adds; with `legacy`, also the `.tmp-*` folders adds used before voices/.staging existed
    (finding those means listing every guild's folder: doctor --repair does, the start-up sweep not)."""
    found = sorted(store.staging_dir.iterdir()) if store.staging_dir.is_dir() else []
    if legacy and store.voices_dir.is_dir():
        for guild in sorted(store.voices_dir.iterdir()):
            if guild.is_dir() and guild.name.isdigit():
                found += sorted(p for p in guild.iterdir() if p.name.startswith(LEGACY_TMP_PREFIX))
    return found


def sweep(store: VoiceStore, *, legacy: bool = False) -> SweepReport:
    """Finish or undo interrupted writes. The caller holds the files lock exclusively, so no write
    is in flight in any process: every unsettled row and temporary folder is a leftover.

    An add whose folder was renamed into place has its files whole (they are written and synced in
    staging first), so it is rolled forward, not undone: that is also what a backup taken in the README's
    order (database first, then voices/) restores mid-add, and its recording must survive. Its latent is
    re-encoded from the recording if it is unusable. An add still in staging was never whole: undone."""
    unsettled = store.db.execute("SELECT id, guild_id, state FROM voices WHERE state != 'ready'").fetchall()
    undone = finished = deleted = 0
    for voice_id, guild_id, state in unsettled:
        folder = store.folder(guild_id, voice_id)
        if state == "adding" and (folder / REFERENCE).is_file():
            with store.transaction() as db:
                db.execute(
                    "UPDATE voices SET state = 'ready', needs_reencode = ? WHERE id = ?",
                    [int(latent_problem(folder / LATENT) is not None), voice_id],
                )
            finished += 1
            continue
        remove_tree(store.staging_dir / voice_id)
        remove_tree(folder)
        with store.transaction() as db:
            db.execute("DELETE FROM user_defaults WHERE voice_id = ?", [voice_id])
            db.execute("DELETE FROM voices WHERE id = ?", [voice_id])
        undone += state == "adding"
        deleted += state == "deleting"
    leftovers = _temporary_folders(store, legacy=legacy)
    for leftover in leftovers:
        remove_tree(leftover)
    report = SweepReport(
        undone_adds=undone, finished_deletes=deleted, staging_removed=len(leftovers), finished_adds=finished
    )
    if report:
        log.warning(
            "Sweep: interrupted adds undone: %d, rolled forward (files complete): %d; deletes finished: %d; "
            "temporary folders removed: %d",
            report.undone_adds,
            report.finished_adds,
            report.finished_deletes,
            report.staging_removed,
        )
    return report


@dataclass
class Audit:
    """Everything `voicebot doctor` checks in the library's files; nothing here changes them."""

    voices: int = 0
    voices_dir_missing: bool = False
    unsettled: list[tuple[str, int, str]] = field(default_factory=list)  # (state, guild_id, voice_id)
    temporary: list[Path] = field(default_factory=list)  # staged or legacy .tmp-* folders
    reencodable: list[tuple[Voice, str]] = field(default_factory=list)  # (voice, latent's problem)
    no_reference: list[Voice] = field(default_factory=list)  # speaks, but can't be re-encoded
    files_missing: list[Voice] = field(default_factory=list)  # neither reference nor latent
    strays: list[Path] = field(default_factory=list)  # folders the library has no row for
    look_alikes: list[list[Voice]] = field(default_factory=list)  # one guild, one name key
    wrong_types: list[str] = field(default_factory=list)  # rows holding a value of the wrong type

    def note_files(self, voice: Voice, *, reference: bool, problem: str | None) -> None:
        """File `voice` under what its recording (kept or not) and its latent's problem call for."""
        if problem and reference:
            self.reencodable.append((voice, problem))
        elif problem:
            self.files_missing.append(voice)
        elif not reference:
            self.no_reference.append(voice)

    @property
    def repairable(self) -> bool:
        return bool(self.unsettled or self.temporary or self.reencodable)


def audit(store: VoiceStore) -> Audit:
    voices = store.all_voices()
    found = Audit(
        voices=len(voices), look_alikes=store.look_alikes(), wrong_types=rows_with_wrong_types(store.db)
    )
    found.unsettled = [
        (state, guild_id, voice_id)
        for voice_id, guild_id, state in store.db.execute(
            "SELECT id, guild_id, state FROM voices WHERE state != 'ready'"
        )
    ]
    if not store.voices_dir.is_dir():
        found.voices_dir_missing = bool(voices)
        return found
    for voice in voices:
        folder = store.folder(voice.guild_id, voice.id)
        reference = (folder / REFERENCE).is_file() and (folder / REFERENCE).stat().st_size > 0
        found.note_files(voice, reference=reference, problem=latent_problem(folder / LATENT, values=True))
    known = {(guild, voice_id) for voice_id, guild in store.db.execute("SELECT id, guild_id FROM voices")}
    for entry in sorted(store.voices_dir.iterdir()):
        if entry.name == STAGING:
            found.temporary += sorted(entry.iterdir())
        elif entry.is_dir() and entry.name.isdigit():
            for folder in sorted(entry.iterdir()):
                if folder.name.startswith(LEGACY_TMP_PREFIX):
                    found.temporary.append(folder)
                elif (int(entry.name), folder.name) not in known:
                    found.strays.append(folder)
    return found
