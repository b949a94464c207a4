"""The voice half of the fake: a TLS voice gateway (v8) and a UDP media server that decrypts and
decodes what the bot plays.

discord.py 2.7 always opens ``wss://{endpoint}/?v=8``, so the websocket is served over TLS with a
self-signed certificate (see ``tls.py``); the client must trust it (``FakeDiscord.connector()``).

Voice gateway, as discord.py drives it:

* server op 8 HELLO ``{heartbeat_interval, v: 8}`` on connect; client op 3 heartbeats
  ``{t, seq_ack}`` answered with op 6 ``{t}``;
* client op 0 IDENTIFY ``{server_id, user_id, session_id, token, max_dave_protocol_version}``
  checked against the VOICE_SERVER_UPDATE token and the gateway session (else close 4004) → op 2
  READY ``{ssrc, ip: 127.0.0.1, port, modes: [aead_xchacha20_poly1305_rtpsize]}``;
* IDENTIFY without ``max_dave_protocol_version`` ≥ 1 → close 4017 (DAVE is required), unless the
  server runs with ``dave=False``;
* client op 1 SELECT_PROTOCOL (unknown mode → close 4016) → op 4 SESSION_DESCRIPTION
  ``{mode, secret_key: [32 ints], dave_protocol_version: 1}`` (0 with ``dave=False``), then the
  DAVE handshake and transitions of ``dave.py`` (binary ops 25–30, JSON 11, 13, 21–24, 31);
  client op 5 SPEAKING is recorded;
* client op 7 RESUME ``{server_id, session_id, token, seq_ack}`` → op 9 RESUMED (unknown → 4006);
* server messages after IDENTIFY carry ``seq`` (v8 buffered resume), which discord.py echoes back
  as ``seq_ack``;
* faults: close the websocket with any code, or abort the TCP connection (the client sees 1006).

UDP: 74-byte IP discovery (type 1 → type 2 reply with the client's address and port, big-endian),
then RTP packets ``0x80 0x78 seq timestamp ssrc`` whose payload is AEAD XChaCha20-Poly1305
("rtpsize": the AAD is the RTP header including CSRCs and the 4-byte extension header; the nonce
is the 4-byte counter at the end of the packet padded to 24 bytes). Each packet is decrypted with
PyNaCl; with DAVE its payload is then an end-to-end encrypted frame (ending in the 0xFAFA marker)
that the call's listener member decrypts with davey (``DaveCall.hear``), as a person in the channel
would. The Opus is decoded with PyAV's Opus decoder (libopus, else FFmpeg's native one) to 48 kHz
stereo float32 and stored with its arrival time (``time.monotonic()``) and whether it was DAVE.

Other users' voice goes the other way as Discord relays it: server op 5 SPEAKING ``{user_id, ssrc,
speaking}`` then RTP from the user's SSRC (with a 0xBEDE audio-level extension) encrypted with the
bot's key (and end-to-end encrypted by the member's own DAVE session once it is in the group),
sent to the address the bot discovered.

What discord.py 2.7 does when the fake drops the voice websocket (observed, see the e2e tests):

* close codes other than 1000/4014/4015/4021/4022, or a TCP abort (1006): back-off of up to 2 s
  (playback keeps flowing over UDP meanwhile), op 4 leave + op 4 join, a fresh IDENTIFY (new SSRC
  and key) and playback continues. The new IP discovery waits until discord.py's UDP reader thread
  leaves its ``select(..., 30)`` on the old, closed socket: at once if any UDP packet reached the
  bot after its previous discovery (e.g. a member spoke, ``FakeDiscord.member_speak``), otherwise
  up to 30 s;
* 4015: discord.py re-sends op 4 for the same channel and waits for a connection state it never
  reaches; after its 30 s timeout it disconnects and the player ends early (``after(None)``).

Not covered: the legacy xsalsa20 modes, RTCP, video, op 12 client connect, buffered replay of
missed messages on RESUME (DAVE messages lost while the websocket was down stay lost).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import av
import nacl.exceptions
import nacl.secret
import numpy as np
from aiohttp import WSMsgType, web

from . import dave, mls
from .state import World

SAMPLE_RATE = 48_000
MODES = ["aead_xchacha20_poly1305_rtpsize"]
_DISCOVERY_REQUEST = 1
_DISCOVERY_RESPONSE = 2


@dataclass
class VoicePacket:
    """One RTP packet the fake received and decoded."""

    arrival: float
    guild_id: int
    ssrc: int
    sequence: int
    timestamp: int
    opus: bytes  # after transport and (when ``dave``) end-to-end decryption
    pcm: np.ndarray
    dave: bool = False  # the payload was a DAVE protocol frame (0xFAFA marker), not bare Opus
    frame: bytes = b""  # the payload as it came out of transport decryption


@dataclass(eq=False)
class VoiceSession:
    """One voice-gateway IDENTIFY: a key, an SSRC and everything that happened on it."""

    guild_id: int
    user_id: int
    session_id: str
    token: str
    ssrc: int
    secret_key: bytes
    identify: dict[str, Any]
    channel_id: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    mode: str | None = None
    selected_address: tuple[str, int] | None = None
    discovered_address: tuple[str, int] | None = None
    described_at: float | None = None
    speaking: list[dict[str, Any]] = field(default_factory=list)
    seq_acks: list[int] = field(default_factory=list)
    resumes: int = 0
    #: How each of its websockets ended: the code the fake closed it with, else the client's.
    close_codes: list[int | None] = field(default_factory=list)
    packets: list[VoicePacket] = field(default_factory=list)
    decrypt_failures: int = 0
    dave_failures: int = 0  # frames the listener could not end-to-end decrypt
    decode_failures: int = 0
    dave: dave.DaveCall | None = None
    server_seq: int = 0
    outbound_nonce: int = 0
    connection: web.WebSocketResponse | None = None
    transport: asyncio.BaseTransport | None = None
    _decoder: Any = None

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.closed

    def decode(self, opus: bytes) -> np.ndarray:
        """Opus → float32 (samples, 2) at 48 kHz, keeping decoder state across packets."""
        if self._decoder is None:
            self._decoder = _new_decoder()
        frames = self._decoder.decode(av.Packet(opus))
        if not frames:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate([_frame_to_float(frame) for frame in frames])


def _new_decoder() -> Any:
    for name in ("libopus", "opus"):
        try:
            decoder = av.CodecContext.create(name, "r")
        except (av.error.FFmpegError, ValueError):
            continue
        decoder.sample_rate = SAMPLE_RATE
        decoder.layout = "stereo"
        return decoder
    raise RuntimeError("PyAV has no Opus decoder")


def _frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    array = array.T if frame.format.is_planar else array.reshape(-1, channels)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    array = array.astype(np.float32, copy=False)
    if channels == 1:
        array = np.repeat(array, 2, axis=1)
    return array


def parse_rtp(packet: bytes, key: bytes) -> tuple[int, int, int, bytes]:
    """``(sequence, timestamp, ssrc, opus)`` from an ``aead_xchacha20_poly1305_rtpsize`` packet.

    Raises ``ValueError`` for malformed packets and ``nacl.exceptions.CryptoError`` for bad tags.
    """
    if len(packet) < 12 + 16 + 4 or packet[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    sequence, timestamp, ssrc = struct.unpack_from(">HII", packet, 2)
    header_length = 12 + 4 * (packet[0] & 0x0F)
    extension_words = 0
    if packet[0] & 0x10:
        # rtpsize: the 4-byte extension header is authenticated, its body is encrypted.
        extension_words = struct.unpack_from(">H", packet, header_length + 2)[0]
        header_length += 4
    header = packet[:header_length]
    nonce = packet[-4:] + bytes(20)
    plain = nacl.secret.Aead(key).decrypt(packet[header_length:-4], header, nonce)
    return sequence, timestamp, ssrc, plain[4 * extension_words :]


def build_rtp(
    sequence: int,
    timestamp: int,
    ssrc: int,
    opus: bytes,
    key: bytes,
    nonce: int,
    *,
    audio_level: int | None = None,
) -> bytes:
    """An ``aead_xchacha20_poly1305_rtpsize`` RTP packet, as Discord relays another user's voice.

    With ``audio_level`` a one-byte RFC 8285 header extension (0xBEDE, id 1) is added like Discord
    does: its 4-byte header is part of the AAD, its body is encrypted with the payload.
    """
    first = 0x90 if audio_level is not None else 0x80
    header = struct.pack(">BBHII", first, 0x78, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    body = opus
    if audio_level is not None:
        header += b"\xbe\xde\x00\x01"
        body = bytes([0x10, audio_level & 0x7F, 0, 0]) + opus
    counter = struct.pack(">I", nonce & 0xFFFFFFFF)
    sealed = nacl.secret.Aead(key).encrypt(body, header, counter + bytes(20)).ciphertext
    return header + sealed + counter


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: VoiceServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.on_datagram(data, addr)


class VoiceServer:
    """The TLS voice websocket plus the UDP media endpoint."""

    def __init__(self, world: World, *, heartbeat_interval_ms: float = 13_750.0, dave: bool = True) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.dave = dave  # negotiate DAVE like Discord (and close 4017 without it)
        self.external_sender = mls.ExternalSender()
        self.sessions: list[VoiceSession] = []
        self.tokens: dict[str, tuple[int, int, str]] = {}
        self.unknown_packets = 0
        self.endpoint = ""
        self.udp_port = 0
        self._udp: _UdpProtocol | None = None
        self._runner: web.AppRunner | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self._user_ssrcs: dict[tuple[int, int], int] = {}
        self._closed_with: dict[int, int] = {}

    async def start(self, ssl_context: ssl.SSLContext) -> None:
        app = web.Application()
        app.router.add_get("/", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"127.0.0.1:{port}"
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=("127.0.0.1", 0)
        )
        self._udp = protocol
        self.udp_port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        for session in self.sessions:
            if session.connected:
                self._close_later(session.connection, 1001)  # type: ignore[arg-type]
        if self._closing:
            await asyncio.wait(self._closing, timeout=3.0)
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
            self._udp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def issue_token(self, guild_id: int, user_id: int, session_id: str) -> str:
        """A voice token for VOICE_SERVER_UPDATE, valid for one guild, user and gateway session."""
        token = secrets.token_hex(8)
        self.tokens[token] = (guild_id, user_id, session_id)
        return token

    # -- queries ---------------------------------------------------------------------------------

    def sessions_for(self, guild_id: int) -> list[VoiceSession]:
        return [s for s in self.sessions if s.guild_id == guild_id]

    def packets(self, guild_id: int) -> list[VoicePacket]:
        packets = [p for s in self.sessions_for(guild_id) for p in s.packets]
        return sorted(packets, key=lambda p: p.arrival)

    def pcm(self, guild_id: int) -> np.ndarray:
        packets = self.packets(guild_id)
        if not packets:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate([p.pcm for p in packets])

    # -- websocket ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=3.0)
        await ws.prepare(request)
        session: VoiceSession | None = None
        hello = {"heartbeat_interval": self.heartbeat_interval_ms, "v": 8}
        await ws.send_str(json.dumps({"op": 8, "d": hello}))
        try:
            async for message in ws:
                if message.type is WSMsgType.BINARY:
                    if session is not None and session.dave is not None:
                        await session.dave.on_binary(message.data)
                elif message.type is WSMsgType.TEXT:
                    session = await self._on_frame(ws, request, session, json.loads(message.data))
                self.world.signal.notify()
        finally:
            if session is not None:
                session.close_codes.append(self._closed_with.pop(id(ws), None) or ws.close_code)
                if session.connection is ws:
                    session.connection = None
            self.world.signal.notify()
        return ws

    async def _send(self, ws: web.WebSocketResponse, session: VoiceSession, op: int, data: Any) -> None:
        session.server_seq += 1
        await ws.send_str(json.dumps({"op": op, "d": data, "seq": session.server_seq}))

    def _dave_call(self, session: VoiceSession) -> dave.DaveCall:
        """The session's DAVE call, whose messages go to whichever websocket the session has now."""

        async def send(op: int, data: Any) -> None:
            if session.connected:
                await self._send(session.connection, session, op, data)  # type: ignore[arg-type]

        async def send_binary(op: int, payload: bytes) -> None:
            if session.connected:
                session.server_seq += 1
                # Server binary frames: u16 sequence number, opcode, payload.
                header = struct.pack(">HB", session.server_seq & 0xFFFF, op)
                await session.connection.send_bytes(header + payload)  # type: ignore[union-attr]

        guild = self.world.guilds[session.guild_id]
        others = [
            uid
            for uid, state in guild.voice_states.items()
            if state.channel_id == session.channel_id and uid != session.user_id
        ]
        return dave.DaveCall(
            channel_id=session.channel_id or 0,
            bot_user_id=session.user_id,
            external_sender=self.external_sender,
            listener_id=self.world.snowflake(),
            member_ids=others,
            send=send,
            send_binary=send_binary,
        )

    async def _on_frame(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        session: VoiceSession | None,
        frame: dict[str, Any],
    ) -> VoiceSession | None:
        op, data = frame.get("op"), frame.get("d") or {}
        if op == 3:
            if session is not None:
                session.seq_acks.append(int(data.get("seq_ack", -1)))
            await ws.send_str(json.dumps({"op": 6, "d": {"t": data.get("t")}}))
        elif op == 0:
            session = self._identify(data)
            if session is None:
                await ws.close(code=4004, message=b"Authentication failed")
                return None
            session.connection, session.transport = ws, request.transport
            if self.dave and int(data.get("max_dave_protocol_version") or 0) < dave.PROTOCOL_VERSION:
                self._closed_with[id(ws)] = dave.CLOSE_DAVE_REQUIRED
                await ws.close(code=dave.CLOSE_DAVE_REQUIRED, message=b"E2EE/DAVE protocol required")
                return session
            await self._send(
                ws,
                session,
                2,
                {
                    "ssrc": session.ssrc,
                    "ip": "127.0.0.1",
                    "port": self.udp_port,
                    "modes": MODES,
                    "experiments": [],
                },
            )
        elif op == 7:
            session = self._find_resumable(data)
            if session is None:
                await ws.close(code=4006, message=b"Session no longer valid")
                return None
            session.connection, session.transport = ws, request.transport
            session.resumes += 1
            await self._send(ws, session, 9, None)
        elif session is None:
            await ws.close(code=4003, message=b"Not authenticated")
        elif op == 1:
            mode = data.get("data", {}).get("mode")
            if mode not in MODES:
                await ws.close(code=4016, message=b"Unknown encryption mode")
                return session
            session.mode = mode
            address = data["data"]
            session.selected_address = (address.get("address"), int(address.get("port", 0)))
            session.described_at = time.monotonic()
            if self.dave and session.dave is None:
                session.dave = self._dave_call(session)
            await self._send(
                ws,
                session,
                4,
                {
                    "mode": mode,
                    "secret_key": list(session.secret_key),
                    "dave_protocol_version": dave.PROTOCOL_VERSION if session.dave else 0,
                    "audio_codec": "opus",
                    "video_codec": "H264",
                    "media_session_id": secrets.token_hex(16),
                },
            )
            if session.dave is not None:
                await session.dave.start()
        elif op == 5:
            session.speaking.append(dict(data))
        elif session.dave is not None:
            await session.dave.on_json(int(op or 0), data)
        return session

    def _identify(self, data: dict[str, Any]) -> VoiceSession | None:
        claim = self.tokens.get(data.get("token", ""))
        if claim is None:
            return None
        guild_id, user_id, session_id = claim
        if (str(guild_id), str(user_id), session_id) != (
            str(data.get("server_id")),
            str(data.get("user_id")),
            data.get("session_id"),
        ):
            return None
        state = self.world.guilds[guild_id].voice_states.get(user_id)
        session = VoiceSession(
            guild_id=guild_id,
            user_id=user_id,
            session_id=session_id,
            token=data["token"],
            ssrc=random.randint(1, 2**31 - 1),
            secret_key=os.urandom(32),
            identify=dict(data),
            channel_id=state.channel_id if state else None,
        )
        self.sessions.append(session)
        return session

    def _find_resumable(self, data: dict[str, Any]) -> VoiceSession | None:
        for session in reversed(self.sessions):
            if (
                session.token == data.get("token")
                and session.session_id == data.get("session_id")
                and str(session.guild_id) == str(data.get("server_id"))
            ):
                return session
        return None

    # -- other users' voice -----------------------------------------------------------------------

    def user_ssrc(self, guild_id: int, user_id: int) -> int:
        """The SSRC the fake gives a (non-bot) user speaking in a guild; stable per user."""
        return self._user_ssrcs.setdefault((guild_id, user_id), random.randint(1, 2**31 - 1))

    async def send_audio(
        self, guild_id: int, user_id: int, packets: list[bytes], *, interval: float = 0.02
    ) -> int:
        """Relay a user's Opus packets to the bot like Discord does: op 5 SPEAKING ``{user_id,
        ssrc, speaking}`` on the voice websocket, then RTP over UDP encrypted with the bot's key,
        one packet every ``interval`` seconds. Returns how many datagrams were sent."""
        sessions = [s for s in self.sessions_for(guild_id) if s.connected and s.mode and s.discovered_address]
        if not sessions or self._udp is None or self._udp.transport is None:
            raise LookupError(f"the bot has no established voice connection in guild {guild_id}")
        ssrc = self.user_ssrc(guild_id, user_id)
        for session in sessions:
            await self._send(
                session.connection,
                session,
                5,  # type: ignore[arg-type]
                {"user_id": str(user_id), "ssrc": ssrc, "speaking": 1},
            )
        sent = 0
        for index, opus in enumerate(packets):
            for session in sessions:
                packet = build_rtp(
                    index + 1,
                    index * 960,
                    ssrc,
                    session.dave.frame_from(user_id, opus) if session.dave else opus,
                    session.secret_key,
                    session.outbound_nonce,
                    audio_level=30,
                )
                session.outbound_nonce += 1
                self._udp.transport.sendto(packet, session.discovered_address)
                sent += 1
            await asyncio.sleep(interval)
        return sent

    async def member_moved(self, guild_id: int, user_id: int, channel_id: int | None) -> None:
        """A (non-bot) user joined or left a voice channel: the bot's DAVE group follows, as on Discord."""
        for session in self.sessions_for(guild_id):
            if session.dave is None or not session.connected:
                continue
            if channel_id is not None and channel_id == session.channel_id:
                await session.dave.add_member(user_id)
            elif user_id in session.dave.members:
                await session.dave.remove_member(user_id)
        self.world.signal.notify()

    # -- faults ------------------------------------------------------------------------------------

    def drop(self, guild_id: int, code: int | None = None) -> VoiceSession:
        """Close the guild's live voice websocket with ``code`` (None = abort the TCP connection)."""
        live = [s for s in self.sessions_for(guild_id) if s.connected]
        if not live:
            raise LookupError(f"no live voice websocket for guild {guild_id}")
        session = live[-1]
        self._closed_with[id(session.connection)] = 1006 if code is None else code
        if code is None:
            if session.transport is not None:
                session.transport.abort()
        else:
            self._close_later(session.connection, code)  # type: ignore[arg-type]
        return session

    def _close_later(self, ws: web.WebSocketResponse, code: int) -> None:
        # Closing waits for the client's close frame, which discord.py sends only after its
        # reconnect back-off: don't make the caller wait for that.
        task = asyncio.create_task(ws.close(code=code), name="fakediscord-voice-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- UDP -------------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        transport = self._udp.transport if self._udp else None
        if len(data) == 74 and struct.unpack_from(">H", data, 0)[0] == _DISCOVERY_REQUEST:
            ssrc = struct.unpack_from(">I", data, 4)[0]
            reply = bytearray(74)
            struct.pack_into(">HHI", reply, 0, _DISCOVERY_RESPONSE, 70, ssrc)
            host = addr[0].encode("ascii")
            reply[8 : 8 + len(host)] = host
            struct.pack_into(">H", reply, 72, addr[1])
            if transport is not None:
                transport.sendto(bytes(reply), addr)
            for session in self.sessions:
                if session.ssrc == ssrc:
                    session.discovered_address = addr
            return
        if len(data) < 12:
            return
        ssrc = struct.unpack_from(">I", data, 8)[0]
        session = next((s for s in reversed(self.sessions) if s.ssrc == ssrc), None)
        if session is None or session.mode is None:
            self.unknown_packets += 1
            return
        arrival = time.monotonic()
        try:
            sequence, timestamp, _, frame = parse_rtp(data, session.secret_key)
        except (ValueError, nacl.exceptions.CryptoError):
            session.decrypt_failures += 1
            return
        try:
            opus = session.dave.hear(sequence, frame) if session.dave else frame
        except ValueError:
            session.dave_failures += 1
            self.world.signal.notify()
            return
        try:
            pcm = session.decode(opus)
        except av.error.FFmpegError:
            session.decode_failures += 1
            return
        is_dave = dave.is_protocol_frame(frame)
        packet = VoicePacket(arrival, session.guild_id, ssrc, sequence, timestamp, opus, pcm, is_dave, frame)
        session.packets.append(packet)
        self.world.signal.notify()
