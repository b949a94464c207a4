"""How long the bot keeps a server's data after it leaves: the library's side of the bot's guild events.

The bot tells the library when it leaves a server (`departed`) and when it is in one (`returned`: a
re-invite, or a server it is found in at start). Once an hour, and at start, servers whose grace period
(VOICEBOT_PURGE_GRACE_DAYS) has ended are purged: every row and file of theirs, with an audit line.

With several processes each runs this for the servers of its own shards only: a process knows which
servers it is in only for those. Purging is idempotent, so two processes purging one server (a shard
moved between them) both end with it gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from bot.errors import LibraryError
from bot.store import VoiceLibrary
from bot.store.privacy import PurgeReport

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
DAY_S = 86_400.0


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a server's events to."""
    return (guild_id >> 22) % shard_count


def owner_of_shards(shard_ids: Iterable[int] | None, shard_count: int | None) -> Callable[[int], bool]:
    """Whether a server is on one of this process's shards (every server, for an unsharded bot)."""
    if not shard_ids or not shard_count:
        return lambda guild_id: True
    mine = set(shard_ids)
    return lambda guild_id: shard_of(guild_id, shard_count) in mine


async def settle_presence(store: VoiceLibrary, present: Iterable[int], owns: Callable[[int], bool]) -> None:
    """At start: the servers the bot is in are not purged (invited back while it was offline); those of
    its shards that the library holds data of and the bot is not in, it left while offline."""
    here = set(present)
    marked = set(await store.aio.departures())
    for guild_id in here & marked:
        if await store.aio.returned(guild_id):
            log.info("Back in guild %s: its data is kept", guild_id)
    for guild_id in await store.aio.guilds_with_data():
        if guild_id not in here and guild_id not in marked and owns(guild_id):
            log.info("Not in guild %s any more (left while offline): its data is purged later", guild_id)
            await store.aio.departed(guild_id)


async def purge_due(
    store: VoiceLibrary, grace_days: float, owns: Callable[[int], bool], *, now: float | None = None
) -> PurgeReport:
    """Purge the servers of these shards whose grace period has ended."""
    report = await store.aio.purge(now, grace_s=grace_days * DAY_S, actor="bot", only=owns)
    for guild in report.guilds:
        log.info("Purged guild %s: %d voices and its settings and usage", guild.guild_id, len(guild.voices))
    return report


async def keep_purging(store: VoiceLibrary, grace_days: float, owns: Callable[[int], bool]) -> None:
    """Purge what is due now and then every hour, for the life of the process."""
    while True:
        try:
            await purge_due(store, grace_days, owns)
        except LibraryError as exc:  # tried again within the hour
            log.error("Purging servers the bot left failed: %s", exc.admin_message)
        await asyncio.sleep(PURGE_EVERY_S)
