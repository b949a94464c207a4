"""Deletion on request and purge after the bot leaves a server.

- `forget_user`: everything about one member, in every server: the voices they own, the voices of them
  (their speaker id, or their consent on record), whoever uploaded them, with their recordings and
  latents; their usage, default voices, auto-read opt-ins, speech reservations, the consent
  requests they made or were asked (with the voices waiting on them), and the API keys they made. A
  `forgets` row is written first and removed last, so a crash part-way leaves a row `resume_forgets`
  finishes at the next start.
- `departed` / `returned` / `purge`: when the bot leaves a server its data is kept for a grace period
  (a re-invite keeps it), then every row and file of that server goes.

Usage rows other members made in a deleted voice stay (they are those members' own, and today's quota
counts them) but lose the voice's id. The pronunciation dictionary is the server's, not a member's:
its entries name words, not members, so neither a forget nor anything but a purge touches it.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot import audit
from bot.store.engine import Engine
from bot.store.faults import guarded
from bot.store.sql import Transaction, upsert
from bot.store.voice import Voice

log = logging.getLogger("bot.store")

# What a forget removes besides voices, as the report names each kind: (kind, table, which rows).
MEMBER_ROWS = (
    ("usage", "usage", "user_id = ?"),
    ("default voices", "user_defaults", "user_id = ?"),
    ("auto-read opt-ins", "autoread_members", "user_id = ?"),
    ("speech reservations", "reservations", "user_id = ?"),
    ("consent requests", "consents", "speaker_id = ? OR requested_by = ?"),
    ("API keys", "api_keys", "created_by = ?"),
)
# Every table holding a server's rows, voices aside (they go with their files first); `departures` last.
GUILD_TABLES = (
    "user_defaults",
    "usage",
    "reservations",
    "consents",
    "pronunciations",
    "autoread_channels",
    "autoread_members",
    "autoread_ignored_roles",
    "autoread_settings",
    "guild_settings",
    "api_keys",
    "departures",
)


@dataclass
class ForgetReport:
    """What a forget removed (or, before it runs, would remove)."""

    user_id: int
    voices: dict[int, list[str]] = field(default_factory=dict)  # guild → names of the voices deleted
    rows: dict[str, int] = field(default_factory=dict)  # kind of row → how many

    @property
    def voice_count(self) -> int:
        return sum(len(names) for names in self.voices.values())

    def __bool__(self) -> bool:
        return bool(self.voice_count or any(self.rows.values()))

    def add(self, other: ForgetReport) -> None:
        for guild_id, names in other.voices.items():
            self.voices.setdefault(guild_id, []).extend(names)
        for kind, count in other.rows.items():
            self.rows[kind] = self.rows.get(kind, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "voices": {str(guild): sorted(names) for guild, names in sorted(self.voices.items())},
            "rows": {kind: count for kind, count in self.rows.items() if count},
        }


@dataclass
class GuildPurge:
    guild_id: int
    left_at: float
    voices: list[str] = field(default_factory=list)  # names of the voices deleted
    rows: dict[str, int] = field(default_factory=dict)  # table → rows deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "guild_id": self.guild_id,
            "left_at": self.left_at,
            "voices": sorted(self.voices),
            "rows": {table: count for table, count in self.rows.items() if count},
        }


@dataclass
class PurgeReport:
    """Servers whose grace period after the bot left has ended, and what went (or would go)."""

    guilds: list[GuildPurge] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "guilds": [g.as_dict() for g in self.guilds]}


@dataclass(frozen=True)
class VoiceUse:
    """One delivery in a voice: who asked, when (seconds since the epoch), how much speech."""

    user_id: int
    at: float
    seconds: float
    kind: str


class Privacy(Engine):
    """The library's part for deletion on request and the purge of servers the bot left."""

    _voices: Callable[..., builtins.list[Voice]]
    _remove_voice: Callable[[Voice], None]

    # --- a member's voices and their use ---------------------------------------------------------

    @guarded
    def voices_of_member(self, user_id: int) -> builtins.list[Voice]:
        """Every voice the member owns or that is of them (their speaker id, or their consent on
        record), in every server, those waiting for consent included; by server, then age."""
        return self._voices(
            "state = 'ready' AND (owner_id = ? OR speaker_id = ? OR consent_by = ?) "
            "ORDER BY guild_id, created_at, id",
            [user_id, user_id, user_id],
        )

    @guarded
    def usage_of_voice(self, guild_id: int, voice_id: str, since: float) -> builtins.list[VoiceUse]:
        """Each delivery in the voice since `since`, newest first."""
        rows = self._rows(
            "SELECT user_id, at, coalesce(audio_seconds, 0), coalesce(kind, '') FROM usage "
            "WHERE guild_id = ? AND voice_id = ? AND at >= ? ORDER BY at DESC, id DESC",
            [guild_id, voice_id, since],
        )
        return [VoiceUse(int(u), float(at), float(s), str(k)) for u, at, s, k in rows]

    # --- deletion on request ---------------------------------------------------------------------

    def _member_voices(self, user_id: int) -> builtins.list[Voice]:
        """Their voices, and the voices waiting on a consent request they made or were asked."""
        found = {v.id: v for v in self.voices_of_member(user_id)}
        waiting = self._rows(
            "SELECT voice_id FROM consents WHERE speaker_id = ? OR requested_by = ?", [user_id, user_id]
        )
        ids = [row[0] for row in waiting if row[0] not in found]
        if ids:
            marks = ", ".join("?" * len(ids))
            found.update({v.id: v for v in self._voices(f"state = 'ready' AND id IN ({marks})", ids)})
        return sorted(found.values(), key=lambda v: (v.guild_id, v.created_at, v.id))

    def _member_rows(self, tx: Transaction, user_id: int, *, delete: bool) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, table, which in MEMBER_ROWS:
            where, args = f"FROM {table} WHERE {which}", [user_id] * which.count("?")
            counts[kind] = int(tx.execute(f"SELECT count(*) {where}", args).fetchone()[0])
            if delete and counts[kind]:
                tx.execute(f"DELETE {where}", args)
        return counts

    @guarded
    def forget_user(self, user_id: int, *, requested_by: int | str, dry_run: bool = False) -> ForgetReport:
        """Delete everything about the member (see the module docstring); what was removed. With
        `dry_run`, what would be, and nothing written. Safe to run again; a crash part-way leaves a
        `forgets` row that `resume_forgets` finishes."""
        if dry_run:
            report = ForgetReport(user_id)
            for voice in self._member_voices(user_id):
                report.voices.setdefault(voice.guild_id, []).append(voice.name)
            report.rows = self._member_rows(self._reads_tx(), user_id, delete=False)
            return report
        with self.transaction() as tx:
            upsert(
                tx,
                "forgets",
                {
                    "user_id": user_id,
                    "requested_at": self._database_now(tx),
                    "requested_by": str(requested_by),
                },
                ["user_id"],
            )
        return self._finish_forget(user_id, requested_by, resumed=False)

    def _finish_forget(self, user_id: int, requested_by: int | str, *, resumed: bool) -> ForgetReport:
        report = ForgetReport(user_id)
        for voice in self._member_voices(user_id):
            self._delete_voice_for(voice, actor=requested_by, reason="forget")
            report.voices.setdefault(voice.guild_id, []).append(voice.name)
        with self.transaction() as tx:
            report.rows = self._member_rows(tx, user_id, delete=True)
            tx.execute("DELETE FROM forgets WHERE user_id = ?", [user_id])
        audit.record(
            "forget",
            actor=requested_by,
            guild=None,
            user=user_id,
            voices=report.voice_count,
            rows=sum(report.rows.values()),
            resumed=True if resumed else None,
        )
        return report

    def _delete_voice_for(self, voice: Voice, *, actor: int | str, reason: str) -> None:
        """Remove a voice (its files first, crash-safe) and what points at it: usage rows keep their
        seconds without the voice's id, an auto-read fallback is unset."""
        self._remove_voice(voice)
        with self.transaction() as tx:
            tx.execute("UPDATE usage SET voice_id = NULL WHERE voice_id = ?", [voice.id])
            tx.execute(
                "UPDATE autoread_settings SET fallback_voice_id = NULL WHERE fallback_voice_id = ?",
                [voice.id],
            )
        audit.record(
            "delete", actor=actor, guild=voice.guild_id, voice=voice.id, name=voice.name, reason=reason
        )

    @guarded
    def forgets_pending(self) -> builtins.list[int]:
        """Members whose forget was started and not finished (a crash): `resume_forgets` finishes them."""
        return [int(row[0]) for row in self._rows("SELECT user_id FROM forgets ORDER BY requested_at")]

    @guarded
    def resume_forgets(self) -> builtins.list[ForgetReport]:
        """Finish every forget a crash left part-way (in any process); what each removed now."""
        reports = []
        for user_id, requested_by in self._rows(
            "SELECT user_id, requested_by FROM forgets ORDER BY requested_at"
        ):
            actor: int | str = int(requested_by) if str(requested_by).isdigit() else str(requested_by)
            log.warning("Finishing the deletion of member %s's data that a crash interrupted", user_id)
            reports.append(self._finish_forget(int(user_id), actor, resumed=True))
        return reports

    # --- servers the bot left ----------------------------------------------------------------------

    @guarded
    def departed(self, guild_id: int, at: float | None = None) -> None:
        """The bot left the server (`at`, default now): its data is purged once the grace period
        ends. Leaving again before a return keeps the first time."""
        with self.transaction(lock=("purge", guild_id)) as tx:
            when = self._database_now(tx) if at is None else at
            tx.execute(
                "INSERT INTO departures (guild_id, left_at) VALUES (?, ?) ON CONFLICT (guild_id) DO NOTHING",
                [guild_id, when],
            )

    @guarded
    def returned(self, guild_id: int) -> bool:
        """The bot is in the server (again): nothing of it is purged. Whether it had been marked gone."""
        with self.transaction(lock=("purge", guild_id)) as tx:
            return bool(tx.execute("DELETE FROM departures WHERE guild_id = ?", [guild_id]).rowcount)

    @guarded
    def departures(self) -> dict[int, float]:
        """Servers the bot left and is not back in: guild → when it left."""
        return {int(g): float(t) for g, t in self._rows("SELECT guild_id, left_at FROM departures")}

    @guarded
    def guilds_with_data(self) -> set[int]:
        """Every server the library holds anything of."""
        tables = ["voices", *[t for t in GUILD_TABLES if t != "departures"]]
        union = " UNION ".join(f"SELECT guild_id FROM {table}" for table in tables)
        return {int(row[0]) for row in self._rows(union)}

    @guarded
    def purge(
        self,
        now: float | None = None,
        *,
        grace_s: float,
        dry_run: bool = False,
        actor: str = "bot",
        only: Callable[[int], bool] | None = None,
    ) -> PurgeReport:
        """Delete every row and file of the servers the bot left more than `grace_s` ago (`only`: of
        those it picks). With `dry_run`, list what would go and write nothing. Safe to run in several
        processes at once and to run again: each step is idempotent, and a server the bot returned to
        meanwhile is left as it is from that moment."""
        if now is None:
            now = self._database_now(self._reads_tx())
        due = self._rows(
            "SELECT guild_id, left_at FROM departures WHERE left_at <= ? ORDER BY left_at, guild_id",
            [now - grace_s],
        )
        report = PurgeReport(dry_run=dry_run)
        for guild_id, left_at in due:
            if only is not None and not only(int(guild_id)):
                continue
            done = self._purge_guild(int(guild_id), float(left_at), dry_run=dry_run, actor=actor)
            if done is not None:
                report.guilds.append(done)
        return report

    def _still_gone(self, guild_id: int, left_at: float) -> bool:
        return self._value("SELECT left_at FROM departures WHERE guild_id = ?", [guild_id]) == left_at

    def _purge_guild(self, guild_id: int, left_at: float, *, dry_run: bool, actor: str) -> GuildPurge | None:
        found = GuildPurge(guild_id, left_at)
        voices = self._voices("guild_id = ? AND state = 'ready' ORDER BY created_at, id", [guild_id])
        found.voices = [v.name for v in voices]
        if dry_run:
            found.rows = self._guild_rows(self._reads_tx(), guild_id, delete=False)
            return found
        for voice in voices:
            if not self._still_gone(guild_id, left_at):  # invited back meanwhile: keep the rest
                log.info("Guild %s came back while its data was purged; keeping what is left", guild_id)
                return None
            self._delete_voice_for(voice, actor=actor, reason="purge")
        with self.transaction(lock=("purge", guild_id)) as tx:
            left = tx.execute("SELECT left_at FROM departures WHERE guild_id = ?", [guild_id]).fetchone()
            if left is None or float(left[0]) != left_at:
                return None
            found.rows = self._guild_rows(tx, guild_id, delete=True)
        audit.record(
            "purge",
            actor=actor,
            guild=guild_id,
            left_at=round(left_at, 3),
            voices=len(found.voices),
            rows=sum(n for t, n in found.rows.items() if t != "departures"),
        )
        return found

    def _guild_rows(self, tx: Transaction, guild_id: int, *, delete: bool) -> dict[str, int]:
        counts = {}
        for table in GUILD_TABLES:
            count = int(
                tx.execute(f"SELECT count(*) FROM {table} WHERE guild_id = ?", [guild_id]).fetchone()[0]
            )
            if delete and count:
                tx.execute(f"DELETE FROM {table} WHERE guild_id = ?", [guild_id])
            counts[table] = count
        return counts

    def _reads_tx(self) -> Transaction:
        return _Reads(self)


class _Reads:
    """Statements outside a transaction, read as a Transaction reads them."""

    def __init__(self, engine: Engine) -> None:
        self.execute = engine._execute
