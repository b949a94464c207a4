"""A voice as the library keeps it: the row every engine stores and every reader gets back."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

VOICE_ID_BYTES = 8
VOICE_ID = re.compile(rf"[0-9a-f]{{{2 * VOICE_ID_BYTES}}}")  # secrets.token_hex(VOICE_ID_BYTES)

COLUMNS = (
    "id, guild_id, name, owner_id, created_at, duration_s, sha256, consent_by, consent_at, revision, source, "
    "speaker_id, consent_pending"
)
FIELDS = tuple(COLUMNS.split(", "))


@dataclass(frozen=True)
class Voice:
    id: str
    guild_id: int
    name: str
    owner_id: int
    created_at: str
    duration_s: float
    sha256: str
    consent_by: int
    consent_at: str
    revision: str
    source: str
    speaker_id: int | None = None  # whose voice it is, where known (a voice message's author)
    consent_pending: int = 0  # 1: waiting for the speaker's consent voice message; kept, not usable

    @property
    def pending(self) -> bool:
        return bool(self.consent_pending)

    def is_own_voice_of(self, user_id: int) -> bool:
        """A member's own voice: one they own, or one cloned from them."""
        return user_id in (self.owner_id, self.speaker_id)


def new_voice_id() -> str:
    return secrets.token_hex(VOICE_ID_BYTES)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
