"""DAVE (Discord's end-to-end encrypted voice, protocol v1) as the fake voice gateway plays it.

Discord closes a voice connection that does not offer DAVE with 4017. With DAVE on (the default),
each bot voice connection (one IDENTIFY) gets a :class:`DaveCall`: the gateway's MLS delivery
service and external sender (``mls.py``), plus the other people in the call played by the fake as
:class:`DaveMember` s, each with its own ``davey.DaveSession``. The first is the **listener**, always
present: every frame the bot sends is decrypted by it, so what the fake records is what a person
in the channel would hear. Members who join the bot's voice channel become members too.

The flow, as Discord runs it (https://daveprotocol.com) and discord.py 2.7 answers it:

* op 4 ``dave_protocol_version: 1`` → the bot sends its key package (binary op 26); the gateway
  sends op 25 (external sender) and op 11 clients_connect (who else is in the call);
* group creation: op 27 (external Add proposals for the pending members) → the bot commits (op 28:
  commit + welcome) → members get the welcome, the bot gets op 29 (transition id + its commit);
* a member joins or leaves: op 11 / op 13, then op 27 to the bot and the members in the group;
  the bot's commit wins (it is the first the fake receives) and is announced as above;
* every transition: the bot answers op 23 ready → the gateway sends op 22 execute;
* op 21 ``protocol_version: 0`` downgrade (members turn passthrough on); op 24 ``epoch: 1``
  upgrade (everyone re-creates the group from fresh key packages);
* op 31 invalid commit/welcome from the bot: it resets and sends a new key package; a member
  commits removing its stale leaf and adding the new one, and the bot is welcomed back with op 30.

Members are passthrough (accept frames without DAVE) while a group is being created or downgraded,
as Discord clients are during transitions; davey keeps that allowance ten seconds after it ends.
Opus silence (0xF8 0xFF 0xFE) goes through unencrypted, as the protocol allows.

Simplifications: each voice connection (IDENTIFY) gets a group of its own, so after a reconnect
the members are new; when the bot is in the group its commit always wins. Not covered: revoking
proposals, the sole-member reset, video, SFU-made silence, verification fingerprints.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import davey

from . import mls

PROTOCOL_VERSION = 1
CLOSE_DAVE_REQUIRED = 4017
MAGIC_MARKER = b"\xfa\xfa"
_MIN_SUPPLEMENTAL = 12  # 8-byte tag, a nonce byte, the size byte and the marker

CLIENTS_CONNECT, CLIENT_DISCONNECT = 11, 13
PREPARE_TRANSITION, EXECUTE_TRANSITION, READY_FOR_TRANSITION, PREPARE_EPOCH = 21, 22, 23, 24
EXTERNAL_SENDER, KEY_PACKAGE, PROPOSALS, COMMIT_WELCOME = 25, 26, 27, 28
ANNOUNCE_COMMIT, WELCOME, INVALID_COMMIT_WELCOME = 29, 30, 31

_AUDIO = davey.MediaType.audio

SendJson = Callable[[int, Any], Awaitable[None]]
SendBinary = Callable[[int, bytes], Awaitable[None]]


def is_protocol_frame(frame: bytes) -> bool:
    """DAVE's protocol frame check, as far as a receiver needs it: the 0xFAFA magic marker at the end
    and a supplemental-data size that fits the frame."""
    if len(frame) <= _MIN_SUPPLEMENTAL or frame[-2:] != MAGIC_MARKER:
        return False
    return _MIN_SUPPLEMENTAL <= frame[-3] < len(frame)


@dataclass(eq=False)
class DaveMember:
    """Someone else in the bot's call, played by the fake with a davey session of their own."""

    user_id: int
    session: davey.DaveSession
    key_package: bytes = b""
    #: RTP sequence → the Opus this member decrypted from the bot's frame.
    heard: dict[int, bytes] = field(default_factory=dict)
    failures: int = 0

    @property
    def in_group(self) -> bool:
        return self.session.ready


@dataclass
class Transition:
    """One protocol or epoch change announced to the bot."""

    transition_id: int
    reason: str  # "create", "add", "remove", "rejoin", "downgrade" or "upgrade"
    protocol_version: int
    epoch: int  # the MLS epoch it leads to (unchanged by a downgrade)
    announced_with: int  # op 29 commit, op 30 welcome or op 21 prepare transition
    ready: bool = False  # the bot sent op 23
    executed: bool = False  # the fake sent op 22
    failed: bool = False  # the bot answered op 31


class DaveCall:
    """The voice gateway's DAVE state for one bot voice connection: the MLS group's epoch and leaves,
    the members the fake plays, and each transition, driven by what the bot sends."""

    def __init__(
        self,
        *,
        channel_id: int,
        bot_user_id: int,
        external_sender: mls.ExternalSender,
        listener_id: int,
        member_ids: list[int],
        send: SendJson,
        send_binary: SendBinary,
    ) -> None:
        self.channel_id = channel_id
        self.bot_user_id = bot_user_id
        self.external_sender = external_sender
        self._send, self._send_binary = send, send_binary
        self.protocol_version = PROTOCOL_VERSION
        self.epoch = 0  # 0 = no established group yet
        self.leaves: list[int | None] = []  # user id per MLS leaf index, as the gateway tracks them
        self.members: dict[int, DaveMember] = {}
        self.listener = self._new_member(listener_id)
        for user_id in member_ids:
            self._new_member(user_id)
        self.bot_key_packages: list[bytes] = []
        self.transitions: list[Transition] = []
        self.invalid_commit_welcomes: list[int] = []  # transition ids the bot flagged with op 31
        self.rejected: list[str] = []  # messages from the bot that Discord would not have relayed
        self.fail_next_transition = False
        self._ids = itertools.count(1)
        self._waiting_for: str | None = "key_package"  # what the gateway needs from the bot next
        self._bot_pending = False
        self._upgrading = False
        self._lock = asyncio.Lock()  # the bot's frames and the test's changes interleave at awaits
        self._proposed: tuple[list[int], list[int]] = ([], [])  # (removed, added) user ids in flight
        self._queue: deque[tuple[str, int]] = deque()

    # -- state -------------------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """No transition in flight or queued, and the bot is in the group (or DAVE is downgraded)."""
        return self._waiting_for is None and not self._bot_pending and not self._queue

    def executed_transitions(self, reason: str | None = None) -> list[Transition]:
        return [t for t in self.transitions if t.executed and reason in (None, t.reason)]

    # -- the bot's messages ------------------------------------------------------------------------

    async def start(self) -> None:
        """Right after op 4: the external sender, then who else is in the call."""
        async with self._lock:
            await self._send_binary(EXTERNAL_SENDER, self.external_sender.package())
            await self._send(CLIENTS_CONNECT, {"user_ids": [str(uid) for uid in self.members]})

    async def on_binary(self, message: bytes) -> None:
        """A binary frame from the bot: opcode byte, then the payload."""
        async with self._lock:
            if message[:1] == bytes([KEY_PACKAGE]):
                await self._on_key_package(message[1:])
            elif message[:1] == bytes([COMMIT_WELCOME]):
                await self._on_commit_welcome(message[1:])

    async def on_json(self, op: int, data: dict[str, Any]) -> None:
        """A JSON op from the bot: 23 ready for transition, 31 invalid commit or welcome."""
        async with self._lock:
            if op == READY_FOR_TRANSITION:
                await self._on_ready(int(data.get("transition_id", -1)))
            elif op == INVALID_COMMIT_WELCOME:
                await self._on_invalid(int(data.get("transition_id", -1)))

    async def _on_key_package(self, key_package: bytes) -> None:
        try:
            user_id = mls.key_package_user_id(key_package)
        except ValueError as error:
            self.rejected.append(f"key package: {error}")
            return
        if user_id != self.bot_user_id:
            self.rejected.append(f"key package for user {user_id}")  # Discord checks the credential
            return
        self.bot_key_packages.append(key_package)
        if self._waiting_for == "key_package":
            self._waiting_for = None
            await self._propose_to_bot(added=[m.user_id for m in self.members.values() if not m.in_group])
        elif self._bot_pending:
            self._bot_pending = False
            await self._welcome_bot(key_package)
        await self._advance()

    async def _on_commit_welcome(self, payload: bytes) -> None:
        if self._waiting_for != "commit":
            self.rejected.append("commit nobody asked for")
            return
        try:
            commit, welcome = mls.split_commit_welcome(payload)
        except ValueError as error:
            self.rejected.append(f"commit: {error}")
            return
        removed, added = self._proposed
        if commit.epoch != self.epoch or commit.group_id != mls.group_id(self.channel_id):
            self.rejected.append(f"commit for epoch {commit.epoch}")  # only the current epoch's is relayed
            return
        if added and welcome is None:
            self.rejected.append("commit adding members without a welcome")
            return
        if self.epoch == 0:
            self.leaves = [None] * commit.committer + [self.bot_user_id]
        self._apply(removed, added)
        creating = self.epoch == 0
        for member in self.members.values():
            if member.user_id in added:
                member.session.process_welcome(welcome)
                if creating:
                    member.session.set_passthrough_mode(True)
            elif member.in_group:
                member.session.process_commit(commit.message)
        self.epoch += 1
        if self._upgrading:
            self._upgrading = False
            transition = self._transition("upgrade", ANNOUNCE_COMMIT, PROTOCOL_VERSION)
        else:
            reason = "create" if creating else ("add" if added else "remove")
            transition = self._transition(reason, ANNOUNCE_COMMIT, self.protocol_version)
        announcement = transition.transition_id.to_bytes(2, "big") + self._maybe_corrupt(commit.message)
        await self._send_binary(ANNOUNCE_COMMIT, announcement)

    async def _on_ready(self, transition_id: int) -> None:
        transition = self._pending(transition_id)
        if transition is None or self._waiting_for != "ready":
            return
        transition.ready = True
        await self._send(EXECUTE_TRANSITION, {"transition_id": transition_id})
        transition.executed = True
        self.protocol_version = transition.protocol_version
        if self.protocol_version > 0:
            for member in self.members.values():
                member.session.set_passthrough_mode(False)
        self._waiting_for = None
        await self._advance()

    async def _on_invalid(self, transition_id: int) -> None:
        self.invalid_commit_welcomes.append(transition_id)
        transition = self._pending(transition_id)
        if transition is not None:
            transition.failed = True
        # The bot resets and sends a new key package; it is removed and re-added in one commit.
        self._waiting_for = None
        self._bot_pending = True

    # -- membership and protocol changes -----------------------------------------------------------

    async def add_member(self, user_id: int) -> DaveMember:
        """Someone joined the bot's voice channel: they send a key package and are added to the group."""
        async with self._lock:
            member = self.members.get(user_id) or self._new_member(user_id)
            await self._enqueue("add", user_id)
            return member

    async def remove_member(self, user_id: int) -> None:
        """Someone left the bot's voice channel: their leaf is removed from the group."""
        async with self._lock:
            await self._enqueue("remove", user_id)

    async def downgrade(self) -> None:
        """Op 21 to protocol 0, as when a client without DAVE joins: transport encryption only."""
        async with self._lock:
            await self._enqueue("downgrade", 0)

    async def upgrade(self) -> None:
        """Op 24 ``epoch: 1`` back to protocol 1: the group is re-created from fresh key packages."""
        async with self._lock:
            await self._enqueue("upgrade", PROTOCOL_VERSION)

    async def _enqueue(self, action: str, value: int) -> None:
        self._queue.append((action, value))
        await self._advance()

    async def _advance(self) -> None:
        while self._waiting_for is None and not self._bot_pending and self._queue:
            action, value = self._queue.popleft()
            if action == "add":
                await self._start_add(value)
            elif action == "remove":
                await self._start_remove(value)
            elif action == "downgrade":
                await self._start_downgrade()
            else:
                await self._start_upgrade()

    async def _start_add(self, user_id: int) -> None:
        member = self.members.get(user_id)
        if member is None or member.in_group or self.epoch == 0 or self.protocol_version == 0:
            return  # a pending member joins with the next group creation
        await self._propose_to_bot(added=(user_id,))

    async def _start_remove(self, user_id: int) -> None:
        member = self.members.pop(user_id, None)
        if member is None:
            return
        if user_id in self.leaves and self.protocol_version > 0:
            await self._propose_to_bot(removed=(user_id,))
        else:
            await self._send(CLIENT_DISCONNECT, {"user_id": str(user_id)})

    async def _start_downgrade(self) -> None:
        if self.protocol_version == 0:
            return
        for member in self.members.values():
            member.session.set_passthrough_mode(True)
        transition = self._transition("downgrade", PREPARE_TRANSITION, 0)
        data = {"transition_id": transition.transition_id, "protocol_version": 0}
        await self._send(PREPARE_TRANSITION, data)

    async def _start_upgrade(self) -> None:
        if self.protocol_version > 0:
            return
        self.epoch, self.leaves = 0, []
        for member in self.members.values():
            member.session.reinit(PROTOCOL_VERSION, member.user_id, self.channel_id)
            member.key_package = member.session.get_serialized_key_package()
        self._upgrading = True
        self._waiting_for = "key_package"
        await self._send(PREPARE_EPOCH, {"protocol_version": PROTOCOL_VERSION, "epoch": 1})

    async def _propose_to_bot(self, *, removed: Sequence[int] = (), added: Sequence[int] = ()) -> None:
        if not removed and not added:
            return
        messages = [self._remove(uid) for uid in removed]
        messages += [self._add(self.members[uid].key_package) for uid in added]
        payload = mls.proposals_payload(messages)
        for member in self.members.values():
            if member.in_group:
                member.session.process_proposals(davey.ProposalsOperationType.append, payload)
        self._proposed = (list(removed), list(added))
        self._waiting_for = "commit"
        for uid in removed:
            await self._send(CLIENT_DISCONNECT, {"user_id": str(uid)})
        if added:
            await self._send(CLIENTS_CONNECT, {"user_ids": [str(uid) for uid in added]})
        await self._send_binary(PROPOSALS, bytes([0]) + payload)  # 0 = append

    async def _welcome_bot(self, key_package: bytes) -> None:
        """The bot rejoins an established group: a member commits its removal and re-addition."""
        stale = [self.bot_user_id] if self.bot_user_id in self.leaves else []
        payload = mls.proposals_payload([*(self._remove(uid) for uid in stale), self._add(key_package)])
        in_group = [m for m in self.members.values() if m.in_group]
        append = davey.ProposalsOperationType.append
        commits = [m.session.process_proposals(append, payload) for m in in_group]
        winner = commits[0] if commits else None  # every member commits; the first one received wins
        if winner is None or winner.welcome is None:
            raise RuntimeError("no member in the group committed the bot's return")
        for member in in_group:
            member.session.process_commit(winner.commit)
        self._apply(stale, [self.bot_user_id])
        self.epoch += 1
        transition = self._transition("rejoin", WELCOME, self.protocol_version)
        announcement = transition.transition_id.to_bytes(2, "big") + self._maybe_corrupt(winner.welcome)
        await self._send_binary(WELCOME, announcement)

    # -- media -------------------------------------------------------------------------------------

    def hear(self, sequence: int, frame: bytes) -> bytes:
        """The Opus in one of the bot's frames, as the listener hears it (every other member in the
        group decrypts it too). Raises ``ValueError`` when the listener cannot decrypt it."""
        for member in self.members.values():
            if member is self.listener or not member.in_group:
                continue
            try:
                member.heard[sequence] = member.session.decrypt(self.bot_user_id, _AUDIO, frame)
            except ValueError:
                member.failures += 1
        listener = self.listener
        if listener.in_group:
            try:
                opus = listener.session.decrypt(self.bot_user_id, _AUDIO, frame)
            except ValueError:
                listener.failures += 1
                raise
        elif is_protocol_frame(frame):
            listener.failures += 1
            raise ValueError("an end-to-end encrypted frame before the listener joined the group")
        else:
            opus = frame  # no group yet: transport encryption only
        listener.heard[sequence] = opus
        return opus

    def frame_from(self, user_id: int, opus: bytes) -> bytes:
        """What a member's client sends for ``opus``: end-to-end encrypted once it is in the group."""
        member = self.members.get(user_id)
        if member is None or not member.in_group or self.protocol_version == 0:
            return opus
        return member.session.encrypt_opus(opus)

    # -- helpers -----------------------------------------------------------------------------------

    def _new_member(self, user_id: int) -> DaveMember:
        session = davey.DaveSession(PROTOCOL_VERSION, user_id, self.channel_id)
        session.set_external_sender(self.external_sender.package())
        member = DaveMember(user_id, session, session.get_serialized_key_package())
        self.members[user_id] = member
        return member

    def _apply(self, removed: list[int], added: list[int]) -> None:
        """Leaf bookkeeping as RFC 9420 §12.3 applies a commit: removals, then each add at the
        leftmost free leaf."""
        for user_id in removed:
            self.leaves[self.leaves.index(user_id)] = None
        for user_id in added:
            if None in self.leaves:
                self.leaves[self.leaves.index(None)] = user_id
            else:
                self.leaves.append(user_id)

    def _transition(self, reason: str, announced_with: int, protocol_version: int) -> Transition:
        transition = Transition(next(self._ids), reason, protocol_version, self.epoch, announced_with)
        self.transitions.append(transition)
        self._waiting_for = "ready"
        return transition

    def _pending(self, transition_id: int) -> Transition | None:
        for transition in self.transitions:
            if transition.transition_id == transition_id and not (transition.executed or transition.failed):
                return transition
        return None

    def _add(self, key_package: bytes) -> bytes:
        return self.external_sender.add(self.channel_id, self.epoch, key_package)

    def _remove(self, user_id: int) -> bytes:
        return self.external_sender.remove(self.channel_id, self.epoch, self.leaves.index(user_id))

    def _maybe_corrupt(self, message: bytes) -> bytes:
        if not self.fail_next_transition:
            return message
        self.fail_next_transition = False
        return message[:-1] + bytes([message[-1] ^ 0x01])  # breaks its tag: the bot can't process it
