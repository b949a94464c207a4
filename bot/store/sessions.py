"""Taking turns to start Discord sessions, across every process that runs shards of one bot.

Discord lets a bot IDENTIFY (start a gateway session) once per 5 seconds in each concurrency bucket
(`shard_id % max_concurrency`); one IDENTIFY too many is refused. Processes on several machines share
nothing but the library, so each bucket's last IDENTIFY is a row there, claimed under the bucket's lock,
with the database's clock (PostgreSQL's, the same for every machine; SQLite's processes share one
machine's).
"""

from __future__ import annotations

from bot.store import sql
from bot.store.engine import Engine
from bot.store.faults import guarded


class Sessions(Engine):
    @guarded
    def claim_identify(self, bucket: int, window_s: float) -> float:
        """0 if this process may IDENTIFY in `bucket` now (and the turn is taken), else how many
        seconds until the bucket's last IDENTIFY is `window_s` old."""
        with self.transaction(lock=("identify", bucket)) as tx:
            now = self._database_now(tx)
            row = tx.execute("SELECT claimed_at FROM identify_slots WHERE bucket = ?", [bucket]).fetchone()
            if row is not None and 0 <= now - float(row[0]) < window_s:
                return window_s - (now - float(row[0]))
            sql.upsert(tx, "identify_slots", {"bucket": bucket, "claimed_at": now}, ["bucket"])
        return 0.0
