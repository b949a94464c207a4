"""VoiceLibrary: the voices, settings and reading rules of every server, written once over either
engine (`bot.store.sqlite`, `bot.store.postgres`). The bot, the CLI and the limits hold a VoiceLibrary
and never learn which engine keeps it.

What differs per engine is only where a voice's recording and latent live and how a write keeps them
whole with its row: `_store_voice`, `_remove_voice`, `load_latent`, `read_reference`,
`replace_latent`, and the repairs (`settle_leftovers`, `sweep`, `audit`).
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

import numpy as np

from bot import names
from bot.errors import (
    LibraryDamaged,
    VoiceDeleted,
    VoiceLimitReached,
    VoiceNameTaken,
    VoiceNeedsRepair,
    VoiceNotFound,
)
from bot.store import files, health
from bot.store.aio import in_thread
from bot.store.api_keys import ApiKeys
from bot.store.consents import Consents
from bot.store.faults import guarded
from bot.store.privacy import Privacy
from bot.store.quotas import SpeechQuotas
from bot.store.reading import Reading
from bot.store.schema import wrong_value
from bot.store.sessions import Sessions
from bot.store.settings import SettingsAndUsage
from bot.store.sql import Transaction
from bot.store.voice import COLUMNS, FIELDS, VOICE_ID, Voice, new_voice_id, now

log = logging.getLogger("bot.store")
T = TypeVar("T")


class VoiceLibrary(SettingsAndUsage, Reading, SpeechQuotas, Sessions, Consents, Privacy, ApiKeys):
    """The library, whichever engine keeps it. Synchronous: the CLI and the tests call it directly;
    async code calls `await library.aio.get(...)`, the same method run in a worker thread."""

    max_voices_per_guild: int
    schema_latest: int  # the schema version this bot writes, in this engine's numbering
    schema_on_disk: int  # the library's version when opened (before any migration)
    last_sweep: health.SweepReport  # what the start-up sweep tidied

    @cached_property
    def aio(self) -> AsyncVoiceLibrary:
        """This library's methods as coroutines run in a worker thread: `await library.aio.get(...)`."""
        return AsyncVoiceLibrary(self)

    # --- what each engine provides --------------------------------------------------------------

    def _store_voice(self, voice: Voice, key: str, reference_flac: bytes, latent: np.ndarray) -> None:
        """Keep a new voice, its row and files together, or nothing: the name and the slot are checked
        (`_check_room`) in the same write that takes them."""
        raise NotImplementedError

    def _remove_voice(self, voice: Voice) -> None:
        raise NotImplementedError

    def files_of(self, voice: Voice) -> str:
        """Where the voice's recording and latent are kept, for an admin."""
        raise NotImplementedError

    def load_latent(self, voice: Voice) -> np.ndarray:
        """The voice's latent, or VoiceNeedsRepair (marked for re-encoding) if it is missing or garbled."""
        raise NotImplementedError

    def _reference_bytes(self, voice: Voice) -> bytes:
        """The kept recording's bytes as stored; b"" when there are none."""
        raise NotImplementedError

    @guarded
    def read_reference(self, voice: Voice) -> bytes:
        """The kept reference recording, checked against the hash taken when it was cloned."""
        data = self._reference_bytes(voice)
        if hashlib.sha256(data).hexdigest() != voice.sha256:
            if not self._voices("id = ? AND state = 'ready'", [voice.id]):
                raise VoiceDeleted(voice.name)  # deleted since it was looked up: nothing is damaged
            raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=False)
        return data

    def replace_latent(self, voice: Voice, latent: np.ndarray, revision: str) -> Voice:
        """A new latent from the kept reference (repair, or a model upgrade), swapped in atomically;
        VoiceDeleted if the voice went meanwhile."""
        raise NotImplementedError

    def settle_leftovers(self) -> health.SweepReport:
        """Finish or undo writes another process left half done, when that is safe now."""
        raise NotImplementedError

    def sweep(self, *, legacy: bool = False) -> health.SweepReport:
        raise NotImplementedError

    def audit(self) -> health.Audit:
        raise NotImplementedError

    def integrity_check(self) -> str:
        raise NotImplementedError

    def schema_version(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- reading voices ---------------------------------------------------------------------------

    def _voices(
        self, where: str, args: builtins.list[object], *, strict: bool = False
    ) -> builtins.list[Voice]:
        """Voices whose rows hold what they should. A row holding garbage (a hand edit, a damaged copy)
        is left out of lists and logged (doctor names it); `strict` lookups of one voice say so."""
        found = []
        for row in self._rows(f"SELECT {COLUMNS} FROM voices WHERE {where}", args):
            problem = wrong_value("voices", dict(zip(FIELDS, row, strict=True)))
            if problem is None:
                found.append(Voice(*row))
            elif strict:
                raise LibraryDamaged(self.where, f"voice {row[0]!r}: {problem}")
            else:
                log.error("Voice row %r left out: %s (see `voicebot doctor`)", row[0], problem)
        return found

    @guarded
    def find(self, guild_id: int, name: str) -> Voice | None:
        """The voice called `name` or a look-alike of it; an exact name wins over a look-alike (two
        look-alikes can both exist when they predate the look-alike rule)."""
        found = self._voices(
            "guild_id = ? AND name_key = ? AND state = 'ready' ORDER BY name = ? DESC, created_at LIMIT 1",
            [guild_id, names.key_of(name), names.tidy(name)],
            strict=True,
        )
        return found[0] if found else None

    @guarded
    def get(self, guild_id: int, name: str) -> Voice:
        """The voice called `name` (or a look-alike); failing that, the voice with that id in this guild,
        as `voicebot voices` shows it. A name always wins over an id."""
        voice = self.find(guild_id, name)
        if voice is None and VOICE_ID.fullmatch(name.strip()):
            found = self._voices(
                "guild_id = ? AND id = ? AND state = 'ready'", [guild_id, name.strip()], strict=True
            )
            voice = found[0] if found else None
        if voice is None:
            raise VoiceNotFound(name)
        return voice

    @guarded
    def get_by_id(self, guild_id: int, voice_id: str) -> Voice:
        found = self._voices("guild_id = ? AND id = ? AND state = 'ready'", [guild_id, voice_id], strict=True)
        if not found:
            raise VoiceNotFound(voice_id)
        return found[0]

    @guarded
    def list(self, guild_id: int) -> builtins.list[Voice]:
        """A guild's voices in alphabetical order as people read it (case-blind), not by look-alike key
        (whose skeleton sorts "Me" as "rne")."""
        voices = self._voices("guild_id = ? AND state = 'ready'", [guild_id])
        return sorted(voices, key=lambda v: (v.name.casefold(), v.name))

    @guarded
    def count(self, guild_id: int) -> int:
        return int(
            self._value("SELECT count(*) FROM voices WHERE guild_id = ? AND state = 'ready'", [guild_id])
        )

    @guarded
    def all_voices(self) -> builtins.list[Voice]:
        return self._voices("state = 'ready' ORDER BY guild_id, name_key", [])

    @guarded
    def look_alikes(self) -> builtins.list[builtins.list[Voice]]:
        """Voices of one guild whose names look alike: only libraries from before the rule hold any."""
        keys = self._rows(
            "SELECT guild_id, name_key FROM voices WHERE state = 'ready' "
            "GROUP BY guild_id, name_key HAVING count(*) > 1"
        )
        return [self._voices("guild_id = ? AND name_key = ? AND state = 'ready'", list(k)) for k in keys]

    @property
    def _reads(self) -> Transaction:
        """Statements outside a transaction, read as a Transaction reads them."""
        return _Reads(self)

    def _ready_count(self) -> int:
        return int(self._value("SELECT count(*) FROM voices WHERE state = 'ready'"))

    # --- adding -----------------------------------------------------------------------------------

    def _check_room(self, tx: Transaction, guild_id: int, key: str, voice_id: str = "") -> None:
        """Name free and a slot left, counting adds under way (they reserved theirs). Binding when `tx`
        is a transaction holding the guild's ("voices", guild) lock; advisory otherwise."""
        taken = tx.execute(
            "SELECT name FROM voices WHERE guild_id = ? AND name_key = ? AND id != ? AND state != 'deleting'",
            [guild_id, key, voice_id],
        ).fetchone()
        if taken:
            raise VoiceNameTaken(taken[0])
        if voice_id:
            return
        held = tx.execute(
            "SELECT count(*) FROM voices WHERE guild_id = ? AND state != 'deleting'", [guild_id]
        ).fetchone()[0]
        if held >= self.max_voices_per_guild:
            raise VoiceLimitReached(self.max_voices_per_guild)

    @guarded
    def check_can_add(self, guild_id: int, name: str) -> str:
        """Fail fast, before any upload is decoded or GPU time spent: name valid, free, room left.
        Advisory: `add` checks again in the write that takes them."""
        cleaned = names.clean_name(name)

        self._once_more_if_settled(lambda: self._check_room(self._reads, guild_id, names.name_key(cleaned)))
        return cleaned

    def _once_more_if_settled(self, attempt: Callable[[], T]) -> T:
        """`attempt()`; if the name or slot it wants is held by a write that died in another process (a
        CLI add killed mid-way), settle that leftover now and try once more, instead of holding the name
        until the bot restarts."""
        try:
            return attempt()
        except (VoiceNameTaken, VoiceLimitReached):
            if not self.settle_leftovers():
                raise
            return attempt()

    @guarded
    def add(
        self,
        guild_id: int,
        name: str,
        *,
        owner_id: int,
        reference_flac: bytes,
        latent: np.ndarray,
        duration_s: float,
        revision: str,
        consent_by: int,
        source: str,
        consent_at: str | None = None,
        created_at: str | None = None,
        speaker_id: int | None = None,
        voice_id: str | None = None,
        pending: bool = False,
    ) -> Voice:
        """A new voice, kept whole or not at all. `consent_at` and `created_at` keep an imported voice's
        own record; `voice_id` keeps a migrated voice's id; `pending`: kept, but not usable until its
        speaker's consent (bot.store.consents)."""
        cleaned = names.clean_name(name)
        latent = files.check_latent(np.ascontiguousarray(latent, dtype=np.float16))  # as it will be read
        voice = Voice(
            id=voice_id or new_voice_id(),
            guild_id=int(guild_id),
            name=cleaned,
            owner_id=int(owner_id),
            created_at=created_at or now(),
            duration_s=round(float(duration_s), 3),
            sha256=hashlib.sha256(reference_flac).hexdigest(),
            consent_by=int(consent_by),
            consent_at=consent_at or now(),
            revision=revision,
            source=source,
            speaker_id=None if speaker_id is None else int(speaker_id),
            consent_pending=int(pending),
        )
        key = names.name_key(cleaned)
        self._once_more_if_settled(lambda: self._store_voice(voice, key, reference_flac, latent))
        log.info("Voice %s added in guild %s by owner %s", voice.id, guild_id, owner_id)
        return voice

    # --- repairs ----------------------------------------------------------------------------------

    @guarded
    def mark_needs_reencode(self, voice: Voice) -> None:
        """Flag a voice for the re-encoder; best effort, as a reader may not be able to write."""
        try:
            with self.transaction() as tx:
                tx.execute("UPDATE voices SET needs_reencode = 1 WHERE id = ?", [voice.id])
        except Exception:
            log.warning("Could not mark voice %s for re-encoding", voice.id, exc_info=True)

    @guarded
    def needing_reencode(self) -> builtins.list[Voice]:
        return self._voices("needs_reencode = 1 AND state = 'ready' ORDER BY guild_id, id", [])

    # --- renaming and deleting --------------------------------------------------------------------

    @guarded
    def rename(self, guild_id: int, name: str, new_name: str) -> Voice:
        voice = self.get(guild_id, name)
        cleaned = names.clean_name(new_name)
        key = names.name_key(cleaned)

        def rename_in_one_transaction() -> None:
            with self.transaction(lock=("voices", guild_id)) as tx:
                self._check_room(tx, guild_id, key, voice_id=voice.id)
                tx.execute("UPDATE voices SET name = ?, name_key = ? WHERE id = ?", [cleaned, key, voice.id])

        self._once_more_if_settled(rename_in_one_transaction)
        log.info("Voice %s in guild %s renamed", voice.id, guild_id)
        return self.get_by_id(guild_id, voice.id)

    @guarded
    def delete(self, guild_id: int, name: str) -> Voice:
        voice = self.get(guild_id, name)
        self._remove_voice(voice)
        if voice.pending:  # its consent request goes with it
            with self.transaction() as tx:
                tx.execute("DELETE FROM consents WHERE voice_id = ?", [voice.id])
        log.info("Voice %s deleted from guild %s", voice.id, guild_id)
        return voice


class _Reads:
    def __init__(self, library: VoiceLibrary) -> None:
        self.execute = library._execute


class AsyncVoiceLibrary:
    """Awaitable twins of the VoiceLibrary methods the bot calls; `sync` is the library itself. The
    bot's event loop must never wait on a disk or a database, so async code awaits these."""

    def __init__(self, library: VoiceLibrary) -> None:
        self.sync = library

    # voices
    find = in_thread(VoiceLibrary.find)
    get = in_thread(VoiceLibrary.get)
    get_by_id = in_thread(VoiceLibrary.get_by_id)
    list = in_thread(VoiceLibrary.list)
    count = in_thread(VoiceLibrary.count)
    check_can_add = in_thread(VoiceLibrary.check_can_add)
    add = in_thread(VoiceLibrary.add)
    rename = in_thread(VoiceLibrary.rename)
    delete = in_thread(VoiceLibrary.delete)
    load_latent = in_thread(VoiceLibrary.load_latent)
    read_reference = in_thread(VoiceLibrary.read_reference)
    replace_latent = in_thread(VoiceLibrary.replace_latent)
    mark_needs_reencode = in_thread(VoiceLibrary.mark_needs_reencode)
    needing_reencode = in_thread(VoiceLibrary.needing_reencode)
    settle_leftovers = in_thread(VoiceLibrary.settle_leftovers)
    close = in_thread(VoiceLibrary.close)

    # settings and usage
    settings = in_thread(VoiceLibrary.settings)
    update_settings = in_thread(VoiceLibrary.update_settings)
    default_voice = in_thread(VoiceLibrary.default_voice)
    set_default_voice = in_thread(VoiceLibrary.set_default_voice)
    last_say_at = in_thread(VoiceLibrary.last_say_at)
    record_usage = in_thread(VoiceLibrary.record_usage)
    audio_seconds_since = in_thread(VoiceLibrary.audio_seconds_since)
    reserve_speech = in_thread(VoiceLibrary.reserve_speech)
    settle_speech = in_thread(VoiceLibrary.settle_speech)
    release_speech = in_thread(VoiceLibrary.release_speech)
    reserved_speech = in_thread(VoiceLibrary.reserved_speech)
    clear_reservations = in_thread(VoiceLibrary.clear_reservations)
    claim_identify = in_thread(VoiceLibrary.claim_identify)

    # reading: the dictionary and auto-read
    dictionary = in_thread(VoiceLibrary.dictionary)
    add_pronunciation = in_thread(VoiceLibrary.add_pronunciation)
    remove_pronunciation = in_thread(VoiceLibrary.remove_pronunciation)
    autoread_settings = in_thread(VoiceLibrary.autoread_settings)
    update_autoread_settings = in_thread(VoiceLibrary.update_autoread_settings)
    autoread_channels = in_thread(VoiceLibrary.autoread_channels)
    set_autoread_channel = in_thread(VoiceLibrary.set_autoread_channel)
    autoread_members = in_thread(VoiceLibrary.autoread_members)
    set_autoread_member = in_thread(VoiceLibrary.set_autoread_member)
    autoread_ignored_roles = in_thread(VoiceLibrary.autoread_ignored_roles)
    set_autoread_ignored_role = in_thread(VoiceLibrary.set_autoread_ignored_role)

    # privacy: deletion on request, purge after the bot leaves a server
    voices_of_member = in_thread(VoiceLibrary.voices_of_member)
    usage_of_voice = in_thread(VoiceLibrary.usage_of_voice)
    forget_user = in_thread(VoiceLibrary.forget_user)
    resume_forgets = in_thread(VoiceLibrary.resume_forgets)
    departed = in_thread(VoiceLibrary.departed)
    returned = in_thread(VoiceLibrary.returned)
    departures = in_thread(VoiceLibrary.departures)
    guilds_with_data = in_thread(VoiceLibrary.guilds_with_data)
    purge = in_thread(VoiceLibrary.purge)

    # the speaker's own consent
    request_consent = in_thread(VoiceLibrary.request_consent)
    posted_consent_request = in_thread(VoiceLibrary.posted_consent_request)
    pending_consents = in_thread(VoiceLibrary.pending_consents)
    pending_consent = in_thread(VoiceLibrary.pending_consent)
    consent_attempt = in_thread(VoiceLibrary.consent_attempt)
    confirm_consent = in_thread(VoiceLibrary.confirm_consent)
    withdraw_consent_request = in_thread(VoiceLibrary.withdraw_consent_request)
    expired_consents = in_thread(VoiceLibrary.expired_consents)
    next_consent_expiry = in_thread(VoiceLibrary.next_consent_expiry)
    pending_speaker = in_thread(VoiceLibrary.pending_speaker)

    # API keys
    create_api_key = in_thread(VoiceLibrary.create_api_key)
    api_key_for = in_thread(VoiceLibrary.api_key_for)
    api_key_used = in_thread(VoiceLibrary.api_key_used)
    api_keys = in_thread(VoiceLibrary.api_keys)
    revoke_api_key = in_thread(VoiceLibrary.revoke_api_key)
