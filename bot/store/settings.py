"""Per-guild settings, per-user default voices and usage records: the small tables beside the voices."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.choices import DEFAULT_FILE_FORMAT, DEFAULT_MODE, FILE_FORMATS, MODES
from bot.errors import LibraryDamaged, VoiceNotFound, VoicePending
from bot.store import sql
from bot.store.engine import Engine
from bot.store.faults import guarded
from bot.store.schema import wrong_value

if TYPE_CHECKING:
    from bot.store.voice import Voice


def checked(where: str, table: str, row: dict[str, Any]) -> dict[str, Any]:
    """`row` as read, or LibraryDamaged naming what it holds that it shouldn't (a server's settings
    can't be guessed: a quota read as "none" would lift it)."""
    problem = wrong_value(table, row)
    if problem is not None:
        raise LibraryDamaged(where, f"{table} of guild {row.get('guild_id')!r}: {problem}")
    return row


@dataclass(frozen=True)
class GuildSettings:
    """What a server's admins chose with /settings; None means "the bot's default"."""

    guild_id: int
    clone_role_id: int | None = None  # None: everyone may clone
    max_text_chars: int | None = None  # None: the bot's configured maximum
    cooldown_s: float = 0.0  # per user, between two /say
    daily_quota_s: float | None = None  # seconds of speech per server per UTC day; None: no limit
    default_mode: str = DEFAULT_MODE
    file_format: str = DEFAULT_FILE_FORMAT
    speaker_consent: bool = True  # a voice waits for its speaker's own consent voice message


class SettingsAndUsage(Engine):
    """The library's part for settings and usage; `get` / `get_by_id` are the library's own."""

    get: Callable[[int, str], Voice]
    get_by_id: Callable[[int, str], Voice]
    pending_speaker: Callable[[str], int | None]

    # --- per-guild settings and per-user defaults --------------------------------------------------

    @guarded
    def settings(self, guild_id: int) -> GuildSettings:
        rows = self._records("SELECT * FROM guild_settings WHERE guild_id = ?", [guild_id])
        if not rows:
            return GuildSettings(guild_id)
        checked(self.where, "guild_settings", rows[0])
        row = {k: v for k, v in rows[0].items() if v is not None}
        if "speaker_consent" in row:
            row["speaker_consent"] = bool(row["speaker_consent"])
        return GuildSettings(**row)

    @guarded
    def update_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        current = self.settings(guild_id).__dict__ | changes
        if current["default_mode"] not in MODES or current["file_format"] not in FILE_FORMATS:
            raise ValueError(f"bad settings: {changes}")
        current["speaker_consent"] = int(current["speaker_consent"])  # an integer column on both engines
        with self.transaction() as tx:
            sql.upsert(tx, "guild_settings", current, ["guild_id"])
        return self.settings(guild_id)

    @guarded
    def default_voice(self, guild_id: int, user_id: int) -> Voice | None:
        voice_id = self._value(
            "SELECT voice_id FROM user_defaults WHERE guild_id = ? AND user_id = ?", [guild_id, user_id]
        )
        if voice_id is None:
            return None
        try:
            return self.get_by_id(guild_id, voice_id)
        except VoiceNotFound:
            return None

    @guarded
    def set_default_voice(self, guild_id: int, user_id: int, name: str) -> Voice:
        voice = self.get(guild_id, name)
        if voice.pending:
            raise VoicePending(voice.name, self.pending_speaker(voice.id))
        with self.transaction() as tx:
            sql.upsert(
                tx,
                "user_defaults",
                {"guild_id": guild_id, "user_id": user_id, "voice_id": voice.id},
                ["guild_id", "user_id"],
            )
        return voice

    @guarded
    def last_say_at(self, guild_id: int, user_id: int) -> float | None:
        last = self._value(
            "SELECT max(at) FROM usage WHERE guild_id = ? AND user_id = ? AND kind = 'say' "
            f"AND {self._has_type('at', 'number')}",
            [guild_id, user_id],
        )
        return None if last is None else float(last)

    # --- usage ----------------------------------------------------------------------------------

    @guarded
    def record_usage(
        self,
        guild_id: int,
        user_id: int,
        *,
        kind: str,
        audio_seconds: float,
        gpu_seconds: float,
        at: float | None = None,
        voice_id: str | None = None,
    ) -> None:
        """One delivery; `at` (default now) is when it was delivered, for one recorded late; `voice_id`
        the voice it spoke in (its owner and speaker may see its use)."""
        with self.transaction() as tx:
            sql.insert(
                tx,
                "usage",
                {
                    "guild_id": guild_id,
                    "user_id": user_id,
                    "at": time.time() if at is None else at,
                    "kind": kind,
                    "audio_seconds": audio_seconds,
                    "gpu_seconds": gpu_seconds,
                    "voice_id": voice_id,
                },
            )

    @guarded
    def audio_seconds_since(self, guild_id: int, since: float, user_id: int | None = None) -> float:
        where, args = "guild_id = ? and at >= ?", [guild_id, since]
        if user_id is not None:
            where, args = where + " and user_id = ?", [*args, user_id]
        return float(self._value(f"SELECT coalesce(sum(audio_seconds), 0) FROM usage WHERE {where}", args))
