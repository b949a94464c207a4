"""The gateway half of the fake: Discord's gateway v10 over a plain websocket, JSON text frames.

discord.py connects to ``DEFAULT_GATEWAY?v=10&encoding=json&compress=zlib-stream`` but only
inflates *binary* frames, so the fake answers with uncompressed text frames (allowed by the
protocol). Covered:

* op 10 HELLO → client op 1 heartbeats (answered with op 11) and op 2 IDENTIFY (wrong token →
  close 4004; a second IDENTIFY on one connection → 4005; a ``shard`` that is not ``[id, count]``
  with ``0 <= id < count`` → 4010 (Invalid shard); a privileged intent the application has not
  enabled in the Developer Portal → 4014, which discord.py raises as
  ``PrivilegedIntentsRequired``; a session that would hold more than
  ``World.sharding.max_guilds_per_shard`` guilds (Discord: 2,500) → 4011 (Sharding required);
  discord.py raises the last two closes as ``ConnectionClosed`` with that ``code``);
* sharding: IDENTIFY's ``shard: [id, count]`` (absent = ``[0, 1]``) picks the session's guilds,
  those with ``(guild_id >> 22) % count == id``: READY lists only them, GUILD_CREATE is sent only
  for them and every later event of a guild (messages, interactions, voice state, members,
  channels, roles…) goes only to the sessions of its shard; events without a guild (DMs) go to
  shard 0 only, as on Discord. READY echoes ``shard``;
* IDENTIFY rate limit (``World.sharding``): a shard's concurrency bucket is
  ``id % max_concurrency`` and each bucket may start one session per ``identify_window`` seconds
  (Discord: 5 s; the fake's default 0 enforces nothing). An IDENTIFY that comes too early gets
  op 9 INVALID_SESSION ``d: false`` and no session, which is what Discord documents ("Clients also
  have limit of concurrent Identify requests allowed per 5 seconds. If you hit this limit, the
  Gateway will respond with an Opcode 9 Invalid Session"); discord.py then reconnects and
  identifies again after its ``before_identify_hook``. Each session started takes one from
  ``remaining``; every IDENTIFY is recorded (``World.sharding.identifies``: time, shard, bucket,
  outcome);
* READY (top-level ``s``; ``session_id``, ``resume_gateway_url`` pointing back at the fake,
  ``user``, the shard's guilds as ``{id, unavailable: true}``, ``application {id, flags}``) then
  one GUILD_CREATE per guild of the shard (members: everyone with GUILD_MEMBERS, otherwise the bot
  and members in voice — like Discord; ``member_count`` is exact so discord.py does not wait for
  chunks);
* op 8 REQUEST_GUILD_MEMBERS → one GUILD_MEMBERS_CHUNK;
* op 4 VOICE_STATE_UPDATE → VOICE_STATE_UPDATE (needs the GUILD_VOICE_STATES intent, as on
  Discord) and, when joining, VOICE_SERVER_UPDATE with a fresh voice token and the fake's voice
  endpoint;
* op 6 RESUME → the missed dispatches (by sequence) replayed, then RESUMED; unknown session →
  op 9 INVALID_SESSION ``false``; a client closing with 1000/1001 ends its session (as on
  Discord); op 3 presence updates are recorded;
* server side: dispatch of any event with per-session sequence numbers and intent filtering
  (``intents.py``: MESSAGE_* need GUILD_MESSAGES or DIRECT_MESSAGES, and their content fields are
  emptied for a session without MESSAGE_CONTENT unless exempt), dropping connections (close code,
  or an abrupt TCP abort), op 7 RECONNECT, op 9.

Enabling or disabling a privileged intent (``World.privileged_intents``) applies from the next
IDENTIFY; a live session keeps the intents it identified with.

Not covered: zlib/etf encodings, rate limits on gateway sends, presence and typing events, invalid
intent bits (4013), heartbeat-timeout zombies, running out of session starts (``remaining`` 0),
re-sharding a live session when guilds are added past the per-shard limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import intents
from .intents import Intent
from .models import VoiceState
from .state import IdentifyRecord, World
from .util import shard_id_for

if TYPE_CHECKING:
    from .voice import VoiceServer


#: Dispatches whose message payload the Message Content intent applies to.
_MESSAGE_BODIES = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE"})


def parse_shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as ``(id, count)``, or None when it is not two integers."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    return int(value[0]), int(value[1])


def event_guild_id(event: str, data: dict[str, Any]) -> int | None:
    """The guild a dispatch belongs to (its ``guild_id``; a GUILD_CREATE/UPDATE/DELETE's ``id``), or
    None for an event without a guild (DMs)."""
    if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        return int(data["id"])
    guild_id = data.get("guild_id")
    return int(guild_id) if guild_id is not None else None


class GatewayConnection:
    """One websocket; frames leave through a queue so their order is the order of ``send``."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.path = request.path
        self.query = dict(request.query)
        self.session: GatewaySession | None = None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write(), name="fakediscord-gateway-writer")
        self.closed_with: int | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self._queue.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self._queue.get()) is not None:
            try:
                if not self.ws.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self.ws.send_str(json.dumps(frame))
            finally:
                self._queue.task_done()

    async def close(self, code: int | None) -> None:
        """Close with ``code``, or abort the TCP connection when ``code`` is None."""
        self.closed_with = 1006 if code is None else code
        if code is None:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
        else:
            await self.flush()
            await self.ws.close(code=code)

    async def flush(self) -> None:
        """Wait until every queued frame has been written."""
        if not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), 5.0)

    async def stop(self) -> None:
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


@dataclass
class GatewaySession:
    """A logged-in bot session: survives reconnects and is what RESUME refers to."""

    session_id: str
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    backlog: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    presence: dict[str, Any] | None = None
    resumes: int = 0
    shard: tuple[int, int] = (0, 1)  # (id, count) from IDENTIFY

    def owns(self, guild_id: int | None) -> bool:
        """Whether events of this guild (None: a DM, or no guild) come to this session's shard."""
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return shard_id_for(guild_id, count) == shard_id


class GatewayServer:
    """Accepts gateway websockets at ``/gateway`` (and ``/gateway-resume``, the resume URL)."""

    def __init__(self, world: World, *, heartbeat_interval_ms: int = 41_250) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.voice: VoiceServer | None = None
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        #: How each connection ended: the code the fake closed it with, else the client's.
        self.close_codes: list[int | None] = []
        self.received: list[dict[str, Any]] = []
        self.base_url = ""
        world.dispatch = self.dispatch

    def install(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.handle)
        app.router.add_get("/gateway-resume", self.handle)

    @property
    def resume_url(self) -> str:
        return f"{self.base_url}/gateway-resume"

    # -- dispatching -------------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch to every logged-in session of the event's guild's shard (buffered while a
        session is disconnected); the one place guild events are routed to shards."""
        guild_id = event_guild_id(event, data)
        for session in self.sessions.values():
            if session.owns(guild_id):
                self._dispatch_to(session, event, data)

    def guild_created(self, guild_id: int, *, joined: bool = False) -> None:
        """GUILD_CREATE for a guild the bot just joined, to the sessions of its shard. ``joined``: sent
        without ``unavailable``, as Discord sends a join (discord.py's on_guild_join), not a guild that
        came back from an outage (on_guild_available)."""
        for session in self.sessions.values():
            if session.owns(guild_id):
                payload = self.guild_create(guild_id, session)
                if joined:
                    payload.pop("unavailable", None)
                self._dispatch_to(session, "GUILD_CREATE", payload)

    def _dispatch_to(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        needed = intents.event_intent(event, data)
        if needed is not None and not session.intents & needed:
            return
        if event in _MESSAGE_BODIES:
            content_intent = bool(session.intents & Intent.MESSAGE_CONTENT)
            data = intents.visible_message(data, self.world.application_id, content_intent=content_intent)
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.backlog.append(frame)
        if session.connection is not None:
            session.connection.send(frame)

    # -- connections -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        connection = GatewayConnection(ws, request)
        self.connections.append(connection)
        hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fakediscord"]}
        connection.send({"op": 10, "s": None, "t": None, "d": hello})
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                self.received.append(frame)
                await self._on_frame(connection, frame)
        finally:
            self.close_codes.append(connection.closed_with or ws.close_code)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
                if connection.closed_with is None and ws.close_code in (1000, 1001):
                    # A client closing with 1000/1001 ends its session: it cannot be resumed.
                    self.sessions.pop(session.session_id, None)
            self.connections.remove(connection)
            await connection.stop()
            self.world.signal.notify()
        return ws

    async def _on_frame(self, connection: GatewayConnection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            connection.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(connection, data)
        elif op == 3 and connection.session is not None:
            connection.session.presence = data
        elif op == 4 and connection.session is not None:
            self._voice_state_update(connection.session, data)
        elif op == 6:
            await self._resume(connection, data)
        elif op == 8 and connection.session is not None:
            self._request_members(connection.session, data)
        self.world.signal.notify()

    async def _identify(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        sharding = self.world.sharding
        shard = (0, 1) if data.get("shard") is None else parse_shard(data["shard"])
        record = IdentifyRecord(at=time.monotonic(), shard=shard, bucket=None)
        sharding.identifies.append(record)
        if shard is not None and shard[1] >= 1:
            record.bucket = shard[0] % max(sharding.max_concurrency, 1)
        refusal = self._identify_refusal(connection, data, shard)
        if refusal is not None:
            record.outcome, record.close_code = "closed", refusal
            await connection.close(refusal)
            return
        assert shard is not None
        window = sharding.identify_window
        last = next(
            (
                r
                for r in reversed(sharding.identifies[:-1])
                if r.outcome == "ready" and r.bucket == record.bucket
            ),
            None,
        )
        if window > 0 and last is not None and record.at - last.at < window:
            # Too early for its bucket: Discord answers op 9 INVALID_SESSION (d: false).
            record.outcome = "invalid_session"
            connection.send({"op": 9, "s": None, "t": None, "d": False})
            return
        sharding.remaining = max(sharding.remaining - 1, 0)
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            intents=int(data.get("intents", 0)),
            identify=data,
            connection=connection,
            shard=shard,
        )
        connection.session = session
        self.sessions[session.session_id] = session
        bot = self.world.bot.payload()
        bot.update(verified=True, mfa_enabled=False, flags=0, email=None)
        ready = {
            "v": 10,
            "user": bot,
            "guilds": [{"id": str(g), "unavailable": True} for g in self.world.guilds if session.owns(g)],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {
                "id": str(self.world.application_id),
                "flags": intents.application_flags(self.world.privileged_intents),
            },
            "user_settings": {},
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "_trace": ["fakediscord"],
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        self._dispatch_to(session, "READY", ready)
        for guild_id in self.world.guilds:
            if session.owns(guild_id):
                self._dispatch_to(session, "GUILD_CREATE", self.guild_create(guild_id, session))

    def _identify_refusal(
        self, connection: GatewayConnection, data: dict[str, Any], shard: tuple[int, int] | None
    ) -> int | None:
        """The close code an IDENTIFY is refused with (topics/opcodes-and-status-codes), or None."""
        if data.get("token") != self.world.token:
            return 4004
        if connection.session is not None:
            return 4005
        if shard is None or not 0 <= shard[0] < shard[1]:
            return 4010  # Invalid shard
        if intents.disallowed(int(data.get("intents", 0)), self.world.privileged_intents):
            return 4014  # events/gateway.mdx, "Gateway Restrictions"
        shard_id, count = shard
        held = sum(1 for g in self.world.guilds if shard_id_for(g, count) == shard_id)
        if held > self.world.sharding.max_guilds_per_shard:
            return 4011  # Sharding required: the session would hold too many guilds
        return None

    def guild_create(self, guild_id: int, session: GatewaySession) -> dict[str, Any]:
        guild = self.world.guilds[guild_id]
        if session.intents & Intent.GUILD_MEMBERS:
            return guild.payload()
        in_voice = [uid for uid, state in guild.voice_states.items() if state.channel_id]
        return guild.payload(member_ids=[self.world.bot.id, *in_voice])

    async def _resume(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self.world.token:
            connection.send({"op": 9, "s": None, "t": None, "d": False})
            return
        previous = session.connection
        session.connection = connection
        connection.session = session
        if previous is not None and previous is not connection:
            await previous.close(4000)
        last_seen = data.get("seq") or 0
        for frame in session.backlog:
            if frame["s"] > last_seen:
                connection.send(frame)
        session.resumes += 1
        self._dispatch_to(session, "RESUMED", {"_trace": ["fakediscord"]})

    def _request_members(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.world.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        members = list(guild.members.values())
        if data.get("user_ids"):
            wanted = {int(u) for u in data["user_ids"]}
            members = [m for m in members if m.id in wanted]
        query = data.get("query")
        if query:
            members = [m for m in members if m.name.lower().startswith(query.lower())]
        if data.get("limit"):
            members = members[: int(data["limit"])]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # -- voice state -------------------------------------------------------------------------------

    def _voice_state_update(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild_id = int(data["guild_id"])
        channel_id = int(data["channel_id"]) if data.get("channel_id") else None
        self.set_voice_state(
            guild_id,
            self.world.bot.id,
            channel_id,
            session_id=session.session_id,
            self_mute=bool(data.get("self_mute")),
            self_deaf=bool(data.get("self_deaf")),
        )
        if channel_id is not None and self.voice is not None:
            token = self.voice.issue_token(guild_id, self.world.bot.id, session.session_id)
            self._dispatch_to(
                session,
                "VOICE_SERVER_UPDATE",
                {
                    "token": token,
                    "guild_id": str(guild_id),
                    "endpoint": self.voice.endpoint,
                },
            )

    def set_voice_state(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int | None,
        *,
        session_id: str | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> VoiceState:
        """Move a user (the bot or a test member) into a voice channel (None = leave) and tell bots."""
        guild = self.world.guilds[guild_id]
        previous = guild.voice_states.get(user_id)
        state = VoiceState(
            guild_id=guild_id,
            user_id=user_id,
            channel_id=channel_id,
            session_id=session_id or (previous.session_id if previous else secrets.token_hex(16)),
            self_mute=self_mute,
            self_deaf=self_deaf,
        )
        if channel_id is None:
            guild.voice_states.pop(user_id, None)
        else:
            guild.voice_states[user_id] = state
        self.dispatch("VOICE_STATE_UPDATE", state.payload(guild.members.get(user_id)))
        return state

    # -- faults ------------------------------------------------------------------------------------

    async def drop(self, code: int | None = 4000) -> int:
        """Close every live gateway connection (``None`` = abrupt TCP abort); returns how many."""
        live = [c for c in self.connections if c.session is not None]
        for connection in live:
            await connection.close(code)
        return len(live)

    def send_op(self, op: int, data: Any) -> None:
        """Send a raw non-dispatch op (7 RECONNECT, 9 INVALID_SESSION) on every live connection."""
        for connection in self.connections:
            connection.send({"op": op, "s": None, "t": None, "d": data})

    async def close(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await connection.close(1001)
