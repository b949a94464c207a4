"""What the voice queue holds and how each item ends: `QueueItem`, its `Outcome`, and `item_outcome`,
the one pure function that decides that outcome from the state the item was left in."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord
import numpy as np

from bot.tts.base import SpokenChunk

if TYPE_CHECKING:
    from bot.playback.source import StreamingSource

log = logging.getLogger("bot.playback")

FRAME_S = 0.020

VoiceChannel = discord.VoiceChannel | discord.StageChannel


class Ending(enum.StrEnum):
    PLAYED = "played"
    SKIPPED = "skipped"
    STOPPED = "stopped"
    FAILED = "failed"
    DISCONNECTED = "disconnected"
    WITHHELD = "withheld"  # someone listening may not hear it (`QueueItem.may_hear`)


@dataclass(frozen=True)
class Outcome:
    """How a queue item ended; `error` is set when it `failed`."""

    ending: Ending
    error: Exception | None = None
    seconds: float = 0.0  # audio sent to Discord, not counting silence while waiting for synthesis


OnFinish = Callable[[Outcome], Awaitable[None]]


@dataclass(frozen=True)
class ItemEnd:
    """What is known about an item once it is over: who ended it, and the state its source, the
    player and the voice connection were left in. `item_outcome()` turns it into the
    item's Outcome."""

    interrupted: Ending | None = None  # skip/stop/leave/shutdown ended it: that wins over the rest
    failure: Exception | None = None  # joining for it failed, or discord.py refused to play it
    voice_down: bool = False  # the connection was down (and didn't come back) when it came to play
    player_error: Exception | None = None  # what discord.py's player passed to `after`
    exhausted: bool = False  # the source ran out because its stream ended (or had nothing at all)
    source_error: Exception | None = None  # the stream, or its encoder, raised
    connected: bool = True  # the connection was still up, and ours, when the player stopped
    packets_sent: int = 0


def item_outcome(end: ItemEnd) -> Outcome:
    """How an item ended, from the state it was left in (pure: `tests/test_playback.py` has the table).

    discord.py's player ends with `after(None)` both when a source is finished and when it gave up
    waiting for a lost connection, so a source that ran out played, one that failed failed, and one
    that did neither was cut off: by a lost connection, else by someone stopping our player.
    """
    seconds = end.packets_sent * FRAME_S
    if end.interrupted is not None:
        return Outcome(end.interrupted, None, seconds)
    if end.failure is not None:
        return Outcome(Ending.FAILED, end.failure, seconds)
    if end.voice_down:
        return Outcome(Ending.DISCONNECTED, None, seconds)
    if end.player_error is not None:
        return Outcome(Ending.FAILED, end.player_error, seconds)
    if end.exhausted or end.source_error is not None:
        ending = Ending.FAILED if end.source_error is not None else Ending.PLAYED
        return Outcome(ending, end.source_error, seconds)
    if not end.connected:
        return Outcome(Ending.DISCONNECTED, None, seconds)  # discord.py gave up the connection mid-item
    return Outcome(Ending.STOPPED, None, seconds)  # someone else stopped our player


@dataclass(frozen=True)
class Packets:
    """20 ms Opus packets encoded on the engine side: played as they are, never encoded again."""

    packets: tuple[bytes, ...]


@dataclass(eq=False)
class QueueItem:
    title: str  # shown to users, e.g. the first words
    requester_id: int
    chunks: AsyncIterator[np.ndarray | Packets] | AsyncIterator[np.ndarray] | AsyncIterator[SpokenChunk]
    on_finish: OnFinish | None = None
    # Whether a member may hear it (e.g. they can see the channel it was posted in and every channel it
    # names). Checked for every listener when it starts, and for each member who joins while it plays:
    # anyone who may not withholds it (`Ending.WITHHELD`). None: anyone may.
    may_hear: Callable[[discord.Member], bool] | None = None


@dataclass(eq=False)
class _Entry:
    """A queued item on its way through one guild's queue."""

    item: QueueItem
    channel: VoiceChannel
    ending: Ending | None = None  # set when skip/stop/leave ends it before it ends by itself
    source: StreamingSource | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)  # player ended, or interrupted


async def _aclose(chunks: object) -> None:
    """Close a stream so its producer stops (and its `finally` runs); never raises."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.warning("closing a synthesis stream failed", exc_info=True)
