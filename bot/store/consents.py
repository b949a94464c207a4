"""The speaker's own consent: voices that wait for their speaker's consent voice message.

A voice cloned by someone other than its speaker (or from an uploaded file) is kept with
`consent_pending = 1` until the speaker confirms; `consents` holds the request: who asked, where the
request was posted, the sentence to read, until when. The request row is written before the voice, so
a crash between the two leaves a request whose voice is missing, which expiry removes like any other.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.store import sql
from bot.store.engine import Engine
from bot.store.faults import guarded
from bot.store.voice import Voice, now


@dataclass(frozen=True)
class PendingConsent:
    voice_id: str
    guild_id: int
    speaker_id: int
    requested_by: int
    channel_id: int | None
    message_id: int | None
    sentence: str
    requested_at: float
    expires_at: float
    attempts: int


_COLUMNS = (
    "voice_id, guild_id, speaker_id, requested_by, channel_id, message_id, sentence, requested_at, "
    "expires_at, attempts"
)


class Consents(Engine):
    """The library's part for pending consents; `get_by_id` and `_remove_voice` are the library's own."""

    get_by_id: Callable[[int, str], Voice]
    _remove_voice: Callable[[Voice], None]

    def _consents(self, where: str, args: builtins.list[object]) -> builtins.list[PendingConsent]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM consents WHERE {where} ORDER BY requested_at", args)
        return [PendingConsent(*row) for row in rows]

    @guarded
    def request_consent(
        self,
        *,
        voice_id: str,
        guild_id: int,
        speaker_id: int,
        requested_by: int,
        sentence: str,
        expires_at: float,
    ) -> PendingConsent:
        """Record a request before its pending voice is added (see the module's docstring)."""
        request = PendingConsent(
            voice_id, guild_id, speaker_id, requested_by, None, None, sentence, time.time(), expires_at, 0
        )
        with self.transaction() as tx:
            sql.insert(tx, "consents", request.__dict__)
        return request

    @guarded
    def posted_consent_request(self, voice_id: str, channel_id: int, message_id: int) -> None:
        """Where the request message went, so the speaker's reply finds it and expiry can edit it."""
        with self.transaction() as tx:
            tx.execute(
                "UPDATE consents SET channel_id = ?, message_id = ? WHERE voice_id = ?",
                [channel_id, message_id, voice_id],
            )

    @guarded
    def pending_consents(
        self, *, guild_id: int | None = None, speaker_id: int | None = None
    ) -> builtins.list[PendingConsent]:
        where, args = ["1 = 1"], list[object]()
        for column, value in (("guild_id", guild_id), ("speaker_id", speaker_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        return self._consents(" AND ".join(where), args)

    @guarded
    def pending_consent(self, voice_id: str) -> PendingConsent | None:
        found = self._consents("voice_id = ?", [voice_id])
        return found[0] if found else None

    @guarded
    def pending_speaker(self, voice_id: str) -> int | None:
        """Whose consent a pending voice waits for."""
        value = self._value("SELECT speaker_id FROM consents WHERE voice_id = ?", [voice_id])
        return None if value is None else int(value)

    @guarded
    def consent_attempt(self, voice_id: str) -> int:
        """Count one refused attempt; the attempts so far."""
        with self.transaction() as tx:
            tx.execute("UPDATE consents SET attempts = attempts + 1 WHERE voice_id = ?", [voice_id])
        return int(self._value("SELECT attempts FROM consents WHERE voice_id = ?", [voice_id]) or 0)

    @guarded
    def confirm_consent(self, request: PendingConsent) -> Voice:
        """The speaker agreed: the voice is usable, its consent is theirs, and the request is done."""
        with self.transaction(lock=("voices", request.guild_id)) as tx:
            tx.execute(
                "UPDATE voices SET consent_pending = 0, consent_by = ?, consent_at = ?, speaker_id = ? "
                "WHERE id = ?",
                [request.speaker_id, now(), request.speaker_id, request.voice_id],
            )
            tx.execute("DELETE FROM consents WHERE voice_id = ?", [request.voice_id])
        return self.get_by_id(request.guild_id, request.voice_id)

    @guarded
    def withdraw_consent_request(self, request: PendingConsent) -> Voice | None:
        """The request ended without consent (declined, expired, too many failed tries, the voice
        deleted): the pending voice and its recording go, as nobody agreed to keep them. Idempotent."""
        voice = None
        rows = self._rows("SELECT id FROM voices WHERE id = ? AND consent_pending = 1", [request.voice_id])
        if rows:
            voice = self.get_by_id(request.guild_id, request.voice_id)
            self._remove_voice(voice)
        with self.transaction() as tx:
            tx.execute("DELETE FROM consents WHERE voice_id = ?", [request.voice_id])
        return voice

    @guarded
    def expired_consents(self, at: float | None = None) -> builtins.list[PendingConsent]:
        return self._consents("expires_at <= ?", [time.time() if at is None else at])

    @guarded
    def next_consent_expiry(self) -> float | None:
        value = self._value("SELECT min(expires_at) FROM consents")
        return None if value is None else float(value)
