"""Pointing the real, unmodified discord.py 2.7 at the fake.

Two class attributes decide where discord.py goes:

* ``discord.http.Route.BASE`` (default ``https://discord.com/api/v10``) — every REST call,
  including interaction callbacks and interaction webhooks, is ``Route.BASE + path``;
* ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (a ``yarl.URL``) — where a plain
  ``Client`` opens its first gateway connection (it never calls ``GET /gateway/bot``); later
  resumes use READY's ``resume_gateway_url``, which the fake points back at itself.

The voice websocket URL comes from VOICE_SERVER_UPDATE (``wss://{endpoint}/?v=8``) and uses the
client's own aiohttp session, so the client needs a connector that trusts the fake's certificate:
``discord.Client(..., connector=fake.connector())``.

Do not call ``discord.http._set_api_version`` while patched: it rewrites ``Route.BASE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import discord.gateway
import discord.http
import yarl


@contextmanager
def point_discord_py_at(api_base: str, gateway_url: str) -> Iterator[None]:
    """Send discord.py's REST calls to ``api_base`` and its gateway to ``gateway_url``; restore both
    afterwards."""
    route = discord.http.Route
    websocket = discord.gateway.DiscordWebSocket
    saved_base, saved_gateway = route.BASE, websocket.DEFAULT_GATEWAY
    route.BASE = api_base
    websocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        route.BASE = saved_base
        websocket.DEFAULT_GATEWAY = saved_gateway
