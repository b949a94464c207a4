"""Every use of discord.py internals, in one place; checked against discord.py 2.7.1.

discord.py has no public way to do these two things, and both are needed for a bot that must never be
left sitting silently in a voice channel or report itself healthy while offline. On a discord.py
upgrade, re-read the attributes named here (in `discord/voice_state.py` and `discord/client.py`); if
one is gone, the function falls back to doing nothing (`stop_reconnecting`) or to "closed"
(`gateway_closed`), and `tests/test_playback.py` / the e2e tests show what broke.

- `VoiceClient._connection` (a `VoiceConnectionState`) and its `_runner` / `_connector` tasks: the
  voice websocket poller and a connect attempt. `VoiceClient.disconnect()` does not cancel a
  reconnect already under way (`_runner` keeps going), which would rejoin the channel afterwards
  with nobody holding the connection.
- `Client.ws` (the gateway `DiscordWebSocket`, `None` before the first connect) and its `open`:
  whether the gateway socket is up right now; `Client.is_ready()` stays true across a reconnect.
"""

from __future__ import annotations

import asyncio

import discord


def stop_reconnecting(vc: discord.VoiceProtocol) -> None:
    """Cancel discord.py's own voice reconnect loop (and a connect under way) before disconnecting:
    `disconnect()` leaves it running, and an attempt already under way would rejoin the channel with
    nobody holding the connection (a silent bot left sitting there)."""
    state = getattr(vc, "_connection", None)
    for name in ("_runner", "_connector"):
        task = getattr(state, name, None)
        if isinstance(task, asyncio.Task) and not task.done() and task is not asyncio.current_task():
            task.cancel()


def gateway_closed(client: discord.Client) -> bool:
    """The client's gateway websocket is not open right now (not yet connected, or reconnecting); for
    a client running several shards, any of theirs."""
    if isinstance(client, discord.AutoShardedClient):
        shards = client.shards
        return not shards or any(shard.is_closed() for shard in shards.values())
    ws = getattr(client, "ws", None)
    return ws is None or not ws.open
