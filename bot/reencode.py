"""Voices follow the engine's model: a voice whose latent was made by another model revision than the
one the engine runs now is re-encoded from its kept reference recording.

The work list is the library itself (voices whose revision is not the engine's), so a run that stops (a
restart, Ctrl-C) continues where it stopped. Nothing here deletes a recording: a voice whose recording is
gone or damaged keeps its old latent, which still speaks, and `voicebot doctor` lists it.

Three callers: the running bot (`ModelFollower`, in the background and at low priority: one voice at a
time, a pause between two, none while its members' speech is in flight), `voicebot reencode` (at once),
and `voicebot doctor` (`survey`: how far it got; read-only).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot import audit, cloning
from bot.errors import (
    BackendError,
    BackendFailed,
    BackendInvalidRequest,
    LibraryError,
    VoiceDeleted,
    VoiceNeedsRepair,
    VoiceNotFound,
)
from bot.store import Voice, VoiceLibrary
from bot.store.voice import now
from bot.tts import TTSBackend
from bot.wording import plural

log = logging.getLogger(__name__)

# The running bot's pace; read at each use, so a test may shorten them.
ROUND_EVERY_S = 300.0  # how often the bot looks for voices to re-encode
PAUSE_S = 2.0  # between two voices: members' speech goes first
BUSY_WAIT_S = 5.0  # how long to wait before looking again while members' speech is in flight
BUSIEST_WAIT_S = 60.0  # the longest wait for a quiet moment before the next voice
LOG_EVERY = 100  # voices re-encoded between two progress lines in the bot's log
FAILURES_IN_A_ROW = 3  # voices failing one after another: the backend is at fault, not they
CHEAP_TO_ASK = ("local",)  # backends whose info() costs no GPU start: asked every round

# What became of one voice: re-encoded, kept its old latent (recording missing or damaged), failed
# (retried later), already on the revision (another process did it), or deleted meanwhile.
DONE, KEPT, FAILED, ALREADY, GONE = "done", "kept", "failed", "already", "gone"
OnVoice = Callable[[Voice, str, str], None]  # (voice, what became of it, why it failed or "")


def stale(voices: Sequence[Voice], revision: str) -> list[Voice]:
    """The voices whose latent another model revision made, in the library's order."""
    return [voice for voice in voices if voice.revision != revision]


@dataclass(frozen=True)
class Survey:
    """How far the library is toward `revision` (for doctor)."""

    revision: str
    total: int
    current: int  # voices whose latent `revision` made
    waiting: list[Voice]  # to re-encode
    kept: list[Voice]  # another revision's latent, kept: their recording is missing


def survey(store: VoiceLibrary, revision: str, *, guild_id: int | None = None) -> Survey:
    """Read-only: which voices carry `revision`, which wait for it, which can't follow (no recording)."""
    voices = store.list(guild_id) if guild_id is not None else store.all_voices()
    behind = stale(voices, revision)
    if not behind:
        return Survey(revision, len(voices), len(voices), [], [])
    found = store.audit()
    unrecorded = {voice.id for voice in (*found.no_reference, *found.files_missing)}
    kept = [voice for voice in behind if voice.id in unrecorded]
    waiting = [voice for voice in behind if voice.id not in unrecorded]
    return Survey(revision, len(voices), len(voices) - len(behind), waiting, kept)


@dataclass
class Outcome:
    """One run over a work list: what became of each voice. `revision` is the engine's as the last
    re-encoding reported it (a model changed mid-run shows here); `stopped` says why a run ended early."""

    revision: str
    done: list[Voice] = field(default_factory=list)
    kept: list[Voice] = field(default_factory=list)
    failed: list[tuple[Voice, str]] = field(default_factory=list)
    already: int = 0
    stopped: str | None = None


async def reencode_voices(
    store: VoiceLibrary,
    backend: TTSBackend,
    revision: str,
    voices: Sequence[Voice],
    *,
    actor: str,
    pause_s: float = 0.0,
    busy: Callable[[], bool] | None = None,
    on_voice: OnVoice | None = None,
) -> Outcome:
    """Re-encode `voices` toward `revision`, one at a time, each on its own. A voice that reached the
    revision meanwhile (another process) is passed over, as is one deleted meanwhile; one whose recording
    is gone keeps its old latent; one that fails is reported. A backend that can't serve at all (not
    deployed, unreachable, busy, timed out) or the library failing raises: every voice would meet it.
    `busy()` true: wait before the next voice; `pause_s` between two voices."""
    outcome = Outcome(revision)
    in_a_row = 0
    for index, voice in enumerate(voices):
        if busy is not None:
            await _while(busy)
        what, why = await _reencode_one(store, backend, voice, outcome, actor=actor)
        if pause_s and what in (DONE, FAILED):  # the engine worked for it: members' turn
            await asyncio.sleep(pause_s)
        if on_voice is not None:
            on_voice(voice, what, why)
        in_a_row = in_a_row + 1 if what == FAILED else 0
        if in_a_row >= FAILURES_IN_A_ROW and index + 1 < len(voices):
            outcome.stopped = f"{in_a_row} voices in a row failed, the last with: {why}"
            break
    return outcome


async def _reencode_one(
    store: VoiceLibrary, backend: TTSBackend, voice: Voice, outcome: Outcome, *, actor: str
) -> tuple[str, str]:
    try:
        fresh = await store.aio.get_by_id(voice.guild_id, voice.id)
        if fresh.revision == outcome.revision:
            outcome.already += 1
            return ALREADY, ""
        made = await cloning.reencode(store, backend, fresh)
    except (VoiceDeleted, VoiceNotFound):
        log.info("Voice %s was deleted while it waited to be re-encoded", voice.id)
        return GONE, ""
    except VoiceNeedsRepair:
        outcome.kept.append(voice)
        return KEPT, "its recording is missing or damaged"
    except (BackendFailed, BackendInvalidRequest) as exc:  # this voice's request, as far as one can tell
        return _failed(outcome, voice, getattr(exc, "detail", "") or exc.message)
    except (BackendError, LibraryError):
        raise
    except Exception as exc:  # this voice's files or audio: logged, and the others go on
        log.error("Re-encoding voice %s failed", voice.id, exc_info=True)
        return _failed(outcome, voice, f"{type(exc).__name__}: {exc}")
    if made.revision != outcome.revision:  # the engine changed under this run: follow it
        log.info("The engine now runs model %s (was %s)", made.revision, outcome.revision)
        outcome.revision = made.revision
    outcome.done.append(made)
    audit.record("reencode", actor=actor, guild=made.guild_id, voice=made.id, revision=made.revision)
    return DONE, ""


async def _while(busy: Callable[[], bool]) -> None:
    """Wait while `busy()`: members' speech in flight goes first (a flag of this process, polled); a
    bot that is never idle still moves on by one voice every BUSIEST_WAIT_S."""
    waited = 0.0
    while True:
        if not busy() or waited >= BUSIEST_WAIT_S:
            return
        await asyncio.sleep(BUSY_WAIT_S)
        waited += BUSY_WAIT_S


def _failed(outcome: Outcome, voice: Voice, why: str) -> tuple[str, str]:
    log.warning(
        "Re-encoding voice %s in guild %s failed (tried again later): %s", voice.id, voice.guild_id, why
    )
    outcome.failed.append((voice, why))
    return FAILED, why


class ModelFollower:
    """The bot's background re-encoder. Each round it lists the voices (of its shards), learns the
    engine's revision and re-encodes the voices behind it; nothing but cancellation ends it.

    Asking the engine its revision: a local engine answers in-process, every round. Modal's `info()`
    runs in a GPU container, so it is asked once (the first round that finds voices) and again only
    when a voice cloned since (in any process) or a re-encoding reports another revision: a redeploy
    shows with the first voice cloned after it, while that container is still warm."""

    def __init__(
        self,
        store: VoiceLibrary,
        backend: TTSBackend,
        *,
        mine: Callable[[int], bool] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.store, self.backend, self.mine, self.busy = store, backend, mine, busy
        self.revision: str | None = None  # the engine's, as last asked or reported
        self._asked_at = ""  # when, as a voice's created_at reads
        self._kept: set[str] = set()  # voices that keep their old latent, logged once each
        self._made_here: dict[str, str] = {}  # voice → revision this process gave it
        self._contested: set[str] = set()  # voices another engine keeps re-encoding back

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except BackendError as exc:
                log.warning("Re-encoding for the model waits for the speech backend: %s", exc.message)
            except LibraryError as exc:
                log.warning("Re-encoding for the model paused: %s", exc.admin_message)
            except Exception:
                log.exception("A round of re-encoding for the model failed; the next one tries again")
            await asyncio.sleep(ROUND_EVERY_S)

    async def round(self) -> Outcome | None:
        """Re-encode what is behind the engine's revision now; None if nothing was (or none asked)."""
        voices = await asyncio.to_thread(self.store.all_voices)
        if self.mine is not None:
            voices = [voice for voice in voices if self.mine(voice.guild_id)]
        revision = await self._engine_revision(voices)
        if revision is None:
            return None
        work = self._work(stale(voices, revision), revision)
        if not work:
            return None
        total = len(work)
        log.info("Model %s: %s to re-encode from their recordings", revision, plural(total, "voice"))
        done = 0

        def on_voice(voice: Voice, what: str, why: str) -> None:
            nonlocal done
            if what == DONE:
                done += 1
                if done % LOG_EVERY == 0:
                    log.info("Model %s: %d of %d voices re-encoded", revision, done, total)
            elif what == KEPT:
                self._kept.add(voice.id)
                log.warning(
                    "Voice %s in guild %s keeps its latent from model %s: its recording is missing or "
                    "damaged (restore it from a backup, then run `voicebot reencode`)",
                    voice.id,
                    voice.guild_id,
                    voice.revision,
                )

        outcome = await reencode_voices(
            self.store,
            self.backend,
            revision,
            work,
            actor="bot",
            pause_s=PAUSE_S,
            busy=self.busy,
            on_voice=on_voice,
        )
        self._made_here.update((made.id, made.revision) for made in outcome.done)
        self.revision = outcome.revision
        log.info(
            "Model %s: re-encoded %d of %d voices; %d kept their old latent (recording missing); %d failed "
            "(tried again in the next round)%s",
            outcome.revision,
            len(outcome.done),
            total,
            len(outcome.kept),
            len(outcome.failed),
            f"; stopped early: {outcome.stopped}" if outcome.stopped else "",
        )
        return outcome

    def _work(self, behind: list[Voice], revision: str) -> list[Voice]:
        """The voices behind `revision` to try now: not those whose recording this process already
        found missing (`voicebot reencode` tries them again), nor those two engines fight over."""
        work = []
        for voice in behind:
            if voice.id in self._kept or voice.id in self._contested:
                continue
            if self._made_here.get(voice.id) == revision:  # re-encoded here, then set back by another
                self._contested.add(voice.id)
                log.warning(
                    "Voice %s was re-encoded here for model %s, and since by another engine for model %s: "
                    "another bot or CLI with other weights uses this library; this one leaves it alone",
                    voice.id,
                    revision,
                    voice.revision,
                )
                continue
            work.append(voice)
        return work

    async def _engine_revision(self, voices: Sequence[Voice]) -> str | None:
        if not voices:
            return self.revision  # nothing to re-encode: no reason to wake a GPU
        ask = self.revision is None or self.backend.name in CHEAP_TO_ASK
        if not ask:
            ask = any(v.created_at >= self._asked_at and v.revision != self.revision for v in voices)
        if ask:
            asked_at = now()
            info = await self.backend.info()
            self.revision, self._asked_at = str(info["revision"]), asked_at
        return self.revision
