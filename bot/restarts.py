"""A request cut short by its process dying (a crash, `kill -9`, the machine going down): when the
process starts again, the member who asked is told, once, in the reply they are waiting on, instead
of a "thinking…" that never ends. Nothing was charged for it (its reservation is simply dropped)."""

from __future__ import annotations

import logging

import aiohttp
import discord

log = logging.getLogger(__name__)

CUT_SHORT = (
    "The bot restarted while making this, so it was not finished and nothing was charged. "
    "Please run the command again."
)


async def tell_cut_short(replies: list[str]) -> int:
    """Edit each waiting reply ("application id:token" of its interaction) to say so; how many were
    told. An interaction's token lasts 15 minutes: an older one is gone, and that is fine."""
    told = 0
    async with aiohttp.ClientSession() as http:
        for reply in replies:
            application_id, _, token = reply.partition(":")
            url = f"{discord.http.Route.BASE}/webhooks/{application_id}/{token}/messages/@original"
            try:
                async with http.patch(url, json={"content": CUT_SHORT}) as response:
                    if response.status < 300:
                        told += 1
                    else:
                        log.info(
                            "A request cut short by a restart could not be told (HTTP %d)", response.status
                        )
            except aiohttp.ClientError as exc:
                log.info("A request cut short by a restart could not be told: %s", exc)
    return told
