"""Speaking live in voice channels: one FIFO queue per guild, played through an Opus source that is
fed by synthesis while it streams, so the bot starts talking on the first chunk.

Public API (one `Playback` per bot; everything runs on the bot's event loop):

- `Playback(idle_timeout=300.0, alone_timeout=60.0, connect_timeout=30.0)` (seconds).
- `QueueItem(title, requester_id, chunks, on_finish=None)`: `chunks` is an async iterator of
  float32 mono 44.1 kHz arrays (or `SpokenChunk`s), started or not; the queue owns it from
  `enqueue` on and always closes it (`aclose()`), so the backend stops working on a skipped item.
- `await playback.enqueue(channel, item) -> int`: the item's place in the queue (0 = playing now).
  When the guild is idle it joins (or moves to) `channel` first and raises what discord.py raised
  if it can't (`asyncio.TimeoutError`, `discord.ClientException`); the item is then not queued
  and its stream is closed. Otherwise the bot moves to each item's channel when its turn comes.
- `await playback.join(channel) -> VoiceClient` (refused with `discord.ClientException` while
  speaking in another channel), `playback.skip(guild_id) -> bool`,
  `playback.stop(guild_id) -> int` (items ended: the current one and all queued; stays in voice),
  `await playback.leave(guild_id) -> bool`, `playback.queue(guild_id)` (current first),
  `playback.connected_channel(guild_id)` (the channel of a voice connection that is up right now,
  else None — also None while discord.py is reconnecting), `await playback.close()`.
- `await playback.on_voice_state_update(member, before, after)`: the client calls it from its
  `on_voice_state_update` event; it arms/disarms the "alone in the channel" timer.
- Every accepted item gets exactly one `on_finish(Outcome(ending, error, seconds))`, after its
  stream is closed, with `ending` one of `played`, `skipped`, `stopped` (stop, leave, nobody left
  listening, shutdown), `failed` (`error` says why: the stream raised, or joining for it failed)
  or `disconnected`; `seconds` is how much audio was sent. `item_outcome(ItemEnd(...))` is that
  decision as one pure function of the state the item was left in.

Modules, by concern (import the names below from `bot.playback`):
- `items`: `QueueItem`, `Ending`, `Outcome`, `ItemEnd` and `item_outcome`: what is queued, how it ended.
- `source`: `StreamingSource`, the Opus source fed by synthesis (how audio gets from the stream to
  discord.py's player thread, and why live Opus is encoded in a thread).
- `guild`: `GuildPlayer`, one guild's queue commands and the runner that plays it.
- `voice`: one guild's voice connection, and playing through discord.py's reconnects (voice drops,
  moving channels, discord.py's quirks).
- `listeners`: who may hear an item, and leaving when nobody is listening.
- `manager`: `Playback`, every guild's player behind the API above.
"""

from bot.playback.items import (
    Ending,
    ItemEnd,
    OnFinish,
    Outcome,
    Packets,
    QueueItem,
    VoiceChannel,
    item_outcome,
)
from bot.playback.manager import Playback
from bot.playback.source import OPUS_SILENCE, StreamingSource

__all__ = [
    "OPUS_SILENCE",
    "Ending",
    "ItemEnd",
    "OnFinish",
    "Outcome",
    "Packets",
    "Playback",
    "QueueItem",
    "StreamingSource",
    "VoiceChannel",
    "item_outcome",
]
