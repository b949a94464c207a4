"""Speech held against a server's daily quota and a member's cooldown, in the library itself, so every
process that serves the server (bot processes, the CLI, a later API process) checks the same truth.

A request reserves the most speech it can deliver before any GPU time is spent (a row in
`reservations`), and settles with what was delivered (a `usage` row, and the reservation gone, in one
transaction) or is released. The check and the reservation happen in one transaction under the
server's ("limits", guild) lock, so two processes can't both pass the same check.

A process that dies leaves its reservations behind: each names its `holder` (the process's role, such as
"shards 0-1 of 4"), which clears its own when it starts again, and each ends by itself after
RESERVATION_LEASE_S, longer than any request can run (Discord's 15-minute interaction window).
"""

from __future__ import annotations

import secrets

from bot.errors import CooldownActive, QuotaExhausted
from bot.store import sql
from bot.store.engine import Engine
from bot.store.faults import guarded

RESERVATION_LEASE_S = 20 * 60


class SpeechQuotas(Engine):
    @guarded
    def reserve_speech(
        self,
        guild_id: int,
        user_id: int,
        seconds: float,
        *,
        cooldown_s: float,
        daily_quota_s: float | None,
        now: float,
        day_start: float,
        holder: str,
        unrecorded_seconds: float = 0.0,
        unrecorded_last_at: float | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Reserve `seconds` of today's quota and the member's cooldown slot; the reservation's id, or
        CooldownActive / QuotaExhausted saying why not. `unrecorded_*` is speech this process delivered
        but could not write yet: it counts as if it had been. `reply_to` is where the request's answer
        goes (an interaction's "application id:token"), for a process restarted before it was answered."""
        with self.transaction(lock=("limits", guild_id)) as tx:
            tx.execute("DELETE FROM reservations WHERE guild_id = ? AND expires_at < ?", [guild_id, now])
            if cooldown_s:
                if tx.execute(
                    "SELECT 1 FROM reservations WHERE guild_id = ? AND user_id = ? LIMIT 1",
                    [guild_id, user_id],
                ).fetchone():
                    raise CooldownActive(cooldown_s)  # one request at a time per member
                last = tx.execute(
                    "SELECT max(at) FROM usage WHERE guild_id = ? AND user_id = ? AND kind = 'say' "
                    f"AND {self._has_type('at', 'number')}",
                    [guild_id, user_id],
                ).fetchone()[0]
                times = [float(t) for t in (last, unrecorded_last_at) if t is not None]
                if times and now - max(times) < cooldown_s:
                    raise CooldownActive(cooldown_s - (now - max(times)))
            if daily_quota_s:
                used = tx.execute(
                    "SELECT coalesce(sum(audio_seconds), 0) FROM usage WHERE guild_id = ? AND at >= ?",
                    [guild_id, day_start],
                ).fetchone()[0]
                reserved = tx.execute(
                    "SELECT coalesce(sum(seconds), 0) FROM reservations WHERE guild_id = ?", [guild_id]
                ).fetchone()[0]
                held = float(used) + unrecorded_seconds + float(reserved)
                if held + seconds > daily_quota_s:
                    raise QuotaExhausted(held, daily_quota_s, seconds)
            reservation_id = secrets.token_hex(8)
            sql.insert(
                tx,
                "reservations",
                {
                    "id": reservation_id,
                    "guild_id": guild_id,
                    "user_id": user_id,
                    "seconds": seconds,
                    "expires_at": now + RESERVATION_LEASE_S,
                    "holder": holder,
                    "reply_to": reply_to,
                },
            )
        return reservation_id

    @guarded
    def settle_speech(
        self,
        reservation_id: str,
        guild_id: int,
        user_id: int,
        *,
        audio_seconds: float,
        gpu_seconds: float,
        at: float,
        voice_id: str | None = None,
    ) -> None:
        """What was delivered is charged and the reservation ends, together or not at all (under the
        server's lock: a check running meanwhile sees both or neither). `voice_id`: the voice it spoke in."""
        with self.transaction(lock=("limits", guild_id)) as tx:
            if audio_seconds > 0:
                sql.insert(
                    tx,
                    "usage",
                    {
                        "guild_id": guild_id,
                        "user_id": user_id,
                        "at": at,
                        "kind": "say",
                        "audio_seconds": audio_seconds,
                        "gpu_seconds": gpu_seconds,
                        "voice_id": voice_id,
                    },
                )
            tx.execute("DELETE FROM reservations WHERE id = ?", [reservation_id])

    @guarded
    def release_speech(self, reservation_id: str, guild_id: int) -> None:
        with self.transaction(lock=("limits", guild_id)) as tx:
            tx.execute("DELETE FROM reservations WHERE id = ?", [reservation_id])

    @guarded
    def reserved_speech(self, guild_id: int) -> float:
        """Seconds held now by requests in flight in any process (expired reservations aside)."""
        return float(
            self._value("SELECT coalesce(sum(seconds), 0) FROM reservations WHERE guild_id = ?", [guild_id])
        )

    @guarded
    def clear_reservations(self, holder: str) -> list[str | None]:
        """Forget the reservations an earlier run of `holder` left when it died; the `reply_to` of each
        (None where it had none), so their requests can be told."""
        with self.transaction() as tx:
            rows = tx.execute("SELECT reply_to FROM reservations WHERE holder = ?", [holder]).fetchall()
            tx.execute("DELETE FROM reservations WHERE holder = ?", [holder])
        return [row[0] for row in rows]
