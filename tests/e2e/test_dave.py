"""DAVE (Discord's end-to-end encrypted voice) between the real discord.py 2.7 client and the fake.

Each test plays known Opus packets through discord.py and checks what the fake's listener member —
a second davey session in the bot's MLS group — decrypted: the exact Opus the bot sent, decoded to
audio. Handshake, epochs, downgrade and recovery are read from the fake's record of the call
(``fake.dave_call``) and from discord.py's public ``voice_privacy_code``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Callable

import davey
import discord
import discord.voice_state
import numpy as np
import pytest

from tests.fakediscord import DaveCall, FakeDiscord, VoicePacket
from tests.fakediscord.audio import OpusPacketSource, align, chirp, encode_opus
from tests.fakediscord.dave import ANNOUNCE_COMMIT, CLOSE_DAVE_REQUIRED, PREPARE_TRANSITION, WELCOME
from tests.fakediscord.leftovers import DISCORD_THREADS, assert_nothing_left_behind
from tests.fakediscord.mls import ExternalSender, key_package_user_id, proposals_payload, split_commit_welcome

SILENCE = b"\xf8\xff\xfe"  # discord.py's Opus silence frame, which DAVE lets through unencrypted
TRAILING_SILENCE = [SILENCE] * 5  # what discord.py sends after the last packet
FILLER = encode_opus(chirp(0.02, 1000.0, 1000.0, amplitude=0.1))[0]  # played while a phase waits


@pytest.fixture(autouse=True)
async def leaves_nothing_behind() -> AsyncIterator[None]:
    """Every test must end with discord.py's threads stopped and no asyncio task still pending."""
    yield
    await assert_nothing_left_behind(DISCORD_THREADS)


class PhasedSource(discord.AudioSource):
    """Plays phases of Opus packets; each phase after the first waits (playing ``FILLER``, which DAVE
    encrypts like any sound) until the test calls ``next_phase()``, so every packet of it was made
    after what the test waited for."""

    def __init__(self, phases: list[list[bytes]]) -> None:
        self.phases = phases
        self._released = threading.Semaphore(0)
        self._phase = self._index = 0

    def next_phase(self) -> None:
        self._released.release()

    def read(self) -> bytes:
        while self._index == len(self.phases[self._phase]):
            if self._phase + 1 == len(self.phases):
                return b""
            if not self._released.acquire(blocking=False):
                return FILLER
            self._phase, self._index = self._phase + 1, 0
        self._index += 1
        return self.phases[self._phase][self._index - 1]

    def is_opus(self) -> bool:
        return True


def make_client(fake: FakeDiscord) -> discord.Client:
    intents = discord.Intents.default()
    return discord.Client(intents=intents, connector=fake.connector(), guild_ready_timeout=0.1)


def offer_no_dave(monkeypatch: pytest.MonkeyPatch) -> None:
    """discord.py offers DAVE 0 only without davey, and then refuses voice itself: patch the offer."""
    state = discord.voice_state.VoiceConnectionState
    monkeypatch.setattr(state, "max_dave_protocol_version", property(lambda _: 0))


def play(voice: discord.VoiceClient, source: discord.AudioSource) -> tuple[asyncio.Event, list]:
    """Start playing ``source``; the event is set (from the player thread) when playback ends."""
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    errors: list = []

    def after(error: Exception | None) -> None:
        errors.append(error)
        loop.call_soon_threadsafe(finished.set)

    voice.play(source, after=after)
    return finished, errors


async def settle(fake: FakeDiscord, call: DaveCall, condition: Callable[[], bool]) -> None:
    """Wait until no DAVE transition is in flight or queued and ``condition()`` holds."""

    def describe() -> str:
        return f"{call.transitions}, rejected: {call.rejected}"

    await fake.wait_until(lambda: call.settled and condition(), describe=describe)


async def connect_with_dave(
    fake: FakeDiscord, channel: discord.VoiceChannel
) -> tuple[discord.VoiceClient, DaveCall]:
    """Join ``channel`` and wait until the DAVE group exists and its first transition executed."""
    voice = await channel.connect()
    call = fake.dave_call(channel.guild.id)  # connect() returns after op 4, which started it
    await settle(fake, call, lambda: call.epoch == 1)
    return voice, call


def sound(received: list[VoicePacket]) -> list[VoicePacket]:
    """The packets that carried the test's audio: no silence, no filler."""
    return [p for p in received if p.opus not in (SILENCE, FILLER)]


async def wait_played(fake: FakeDiscord, guild_id: int, finished: asyncio.Event, count: int) -> None:
    """Wait for the player to end and for its ``count`` sound packets and trailing silence to arrive."""
    await asyncio.wait_for(finished.wait(), 20)

    def arrived() -> bool:
        received = fake.voice_packets(guild_id)
        heard = sound(received)
        return len(heard) == count and len(received) > 5 and received[-6] is heard[-1]

    await fake.wait_until(arrived, describe=lambda: f"{len(sound(fake.voice_packets(guild_id)))} of {count}")


def split(packets: list[bytes], parts: int) -> list[list[bytes]]:
    size = -(-len(packets) // parts)
    return [packets[i : i + size] for i in range(0, len(packets), size)]


def runs(packets: list[VoicePacket]) -> list[bool]:
    """Whether packets were DAVE frames, consecutive equal values merged."""
    return [flag for flag, _ in itertools.groupby(p.dave for p in packets)]


def loud(packets: list[VoicePacket]) -> bool:
    """The packets decode to 20 ms of audio each, and it is not silence."""
    pcm = np.concatenate([p.pcm for p in packets])
    return pcm.shape == (960 * len(packets), 2) and float(np.sqrt(np.mean(pcm**2))) > 0.1


async def test_dave_handshake_reaches_epoch_1_and_the_listener_decrypts_the_bots_frames(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    client = make_client(fake)
    reference = chirp(1.0, 440.0, 660.0)
    packets = encode_opus(reference)

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        voice, call = await connect_with_dave(fake, channel)
        listener = call.listener
        bot_code, listener_code = voice.voice_privacy_code, listener.session.voice_privacy_code
        finished, errors = play(voice, OpusPacketSource(packets))
        await wait_played(fake, guild.id, finished, len(packets))
        await voice.disconnect()

    session = fake.voice_sessions(guild)[0]
    assert session.identify["max_dave_protocol_version"] == 1
    assert [key_package_user_id(kp) for kp in call.bot_key_packages] == [fake.bot_user.id]
    assert call.leaves == [fake.bot_user.id, listener.user_id] and listener.session.own_leaf_index == 1
    [creation] = call.transitions
    assert (creation.reason, creation.epoch, creation.announced_with) == ("create", 1, ANNOUNCE_COMMIT)
    assert creation.ready and creation.executed  # the bot sent op 23, the fake op 22
    assert listener.session.epoch == 1 and bot_code is not None and bot_code == listener_code
    received = fake.voice_packets(guild)
    assert errors == [None] and session.decrypt_failures == session.dave_failures == 0
    assert [p.opus for p in received] == packets + TRAILING_SILENCE  # end-to-end decrypted, byte for byte
    heard = sound(received)
    assert all(p.dave and p.frame != p.opus and p.frame.endswith(b"\xfa\xfa") for p in heard)
    assert loud(heard)
    lag, correlation = align(reference, fake.voice_pcm(guild))
    assert correlation >= 0.95 and 0 <= lag < 960


async def test_dave_is_required_a_client_offering_no_dave_is_closed_with_4017(
    fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    client = make_client(fake)
    offer_no_dave(monkeypatch)

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        with pytest.raises(discord.ConnectionClosed) as closed:
            await channel.connect(reconnect=False)
        await fake.wait_until(lambda: fake.bot_voice_channel(guild) is None)

    assert closed.value.code == CLOSE_DAVE_REQUIRED
    [session] = fake.voice_sessions(guild)
    assert session.identify["max_dave_protocol_version"] == 0
    assert session.close_codes == [CLOSE_DAVE_REQUIRED] and session.mode is None and session.dave is None


async def test_dave_off_server_serves_a_client_offering_no_dave(monkeypatch: pytest.MonkeyPatch) -> None:
    offer_no_dave(monkeypatch)
    packets = encode_opus(chirp(0.4))
    async with FakeDiscord(dave=False) as fake:
        guild = fake.add_guild()
        client = make_client(fake)
        async with fake.running(client):
            voice = await client.get_guild(guild.id).voice_channels[0].connect()
            finished, errors = play(voice, OpusPacketSource(packets))
            await wait_played(fake, guild.id, finished, len(packets))
            assert voice.voice_privacy_code is None
            await voice.disconnect()
        [session] = fake.voice_sessions(guild)
        received = fake.voice_packets(guild)
    assert errors == [None] and session.dave is None
    assert not any(p.dave for p in received) and [p.opus for p in received] == packets + TRAILING_SILENCE


async def test_dave_member_joining_and_leaving_mid_playback_makes_new_epochs_and_audio_keeps_decoding(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    bob = fake.add_member(guild, "bob")
    client = make_client(fake)
    packets = encode_opus(chirp(1.8, 440.0, 660.0))
    source = PhasedSource(split(packets, 3))  # before Bob, with Bob, after Bob
    first, with_bob = len(source.phases[0]), len(source.phases[0]) + len(source.phases[1])

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        voice, call = await connect_with_dave(fake, channel)
        first_code = voice.voice_privacy_code
        finished, errors = play(voice, source)
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 10)
        await fake.member_join_voice(bob, guild.voice_channels[0])
        await settle(fake, call, lambda: call.epoch == 2)
        newcomer = call.members[bob.id]
        joined_code = voice.voice_privacy_code
        source.next_phase()
        await fake.wait_until(lambda: len(sound(fake.voice_packets(guild))) >= with_bob)
        await fake.member_leave_voice(bob)
        await settle(fake, call, lambda: call.epoch == 3)
        left_code = voice.voice_privacy_code
        source.next_phase()
        await wait_played(fake, guild.id, finished, len(packets))
        await voice.disconnect()

    assert [(t.reason, t.epoch, t.announced_with, t.executed) for t in call.transitions] == [
        ("create", 1, ANNOUNCE_COMMIT, True),
        ("add", 2, ANNOUNCE_COMMIT, True),  # the bot's commit came back to it as op 29, Bob got the welcome
        ("remove", 3, ANNOUNCE_COMMIT, True),
    ]
    assert len({first_code, joined_code, left_code}) == 3  # each epoch has its own privacy code
    assert joined_code == newcomer.session.voice_privacy_code
    assert left_code == call.listener.session.voice_privacy_code
    assert newcomer.session.own_leaf_index == 2 and bob.id not in call.members
    assert call.leaves == [fake.bot_user.id, call.listener.user_id, None]
    heard = sound(fake.voice_packets(guild))
    assert errors == [None] and fake.voice_sessions(guild)[0].dave_failures == 0
    assert all(p.dave for p in heard) and loud(heard)
    assert [p.opus for p in heard] == packets  # nothing lost across three epochs
    before, during, after = heard[:first], heard[first:with_bob], heard[with_bob:]
    # Bob decrypted every frame made while he was in the group, exactly as the listener did ...
    assert all(newcomer.heard[p.sequence] == p.opus for p in during)
    assert not any(p.sequence in newcomer.heard for p in before[:5])  # ... none from before he joined
    # ... and has no key for what the bot sent after he left.
    with pytest.raises(ValueError):
        newcomer.session.decrypt(fake.bot_user.id, davey.MediaType.audio, after[0].frame)


async def test_dave_downgrade_to_protocol_0_sends_plain_opus_and_an_upgrade_encrypts_again(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    client = make_client(fake)
    packets = encode_opus(chirp(1.8, 440.0, 660.0))
    source = PhasedSource(split(packets, 3))  # E2EE, after the downgrade, after the upgrade
    first, plain = len(source.phases[0]), len(source.phases[0]) + len(source.phases[1])

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        voice, call = await connect_with_dave(fake, channel)
        finished, errors = play(voice, source)
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 10)
        await call.downgrade()
        await settle(fake, call, lambda: call.protocol_version == 0)
        # The bot stops encrypting once it executes the transition (the filler shows it too).
        await fake.wait_until(lambda: not fake.voice_packets(guild)[-1].dave)
        source.next_phase()
        await fake.wait_until(lambda: len(sound(fake.voice_packets(guild))) >= plain)
        await call.upgrade()
        await settle(fake, call, lambda: call.protocol_version == 1)
        upgraded_code = voice.voice_privacy_code
        source.next_phase()
        await wait_played(fake, guild.id, finished, len(packets))
        await voice.disconnect()

    assert [(t.reason, t.protocol_version, t.announced_with, t.executed) for t in call.transitions] == [
        ("create", 1, ANNOUNCE_COMMIT, True),
        ("downgrade", 0, PREPARE_TRANSITION, True),  # op 21, the bot's op 23, op 22
        ("upgrade", 1, ANNOUNCE_COMMIT, True),  # op 24 epoch 1, a fresh key package, a new group
    ]
    assert len(call.bot_key_packages) == 2 and call.epoch == 1
    assert upgraded_code is not None and upgraded_code == call.listener.session.voice_privacy_code
    heard = sound(fake.voice_packets(guild))
    assert errors == [None] and fake.voice_sessions(guild)[0].dave_failures == 0
    assert runs(heard) == [True, False, True]  # E2EE, transport only after the downgrade, E2EE again
    assert [p.opus for p in heard] == packets and loud(heard)
    assert all(not p.dave and p.frame == p.opus for p in heard[first:plain])
    assert all(p.dave and p.frame != p.opus for p in heard[plain:])


async def test_dave_invalid_commit_makes_the_bot_send_op_31_and_a_new_key_package_and_it_recovers(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    bob = fake.add_member(guild, "bob")
    client = make_client(fake)
    packets = encode_opus(chirp(1.2, 440.0, 660.0))
    source = PhasedSource(split(packets, 2))  # before the failure, after the recovery

    async with fake.running(client):
        channel = client.get_guild(guild.id).voice_channels[0]
        voice, call = await connect_with_dave(fake, channel)
        finished, errors = play(voice, source)
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 10)
        call.fail_next_transition = True  # the commit announced for Bob's join reaches the bot corrupted
        await fake.member_join_voice(bob, guild.voice_channels[0])
        await settle(fake, call, lambda: bool(call.executed_transitions("rejoin")))
        recovered_code = voice.voice_privacy_code
        source.next_phase()
        await wait_played(fake, guild.id, finished, len(packets))
        await voice.disconnect()

    _, add, rejoin = call.transitions
    assert add.reason == "add" and add.failed and not add.ready and not add.executed
    assert call.invalid_commit_welcomes == [add.transition_id]  # op 31 named the transition that failed
    assert len(call.bot_key_packages) == 2 and call.bot_key_packages[0] != call.bot_key_packages[1]
    # A member committed "remove the bot's stale leaf, add its new key package"; the bot got op 30.
    assert (rejoin.reason, rejoin.epoch, rejoin.announced_with) == ("rejoin", 3, WELCOME)
    assert rejoin.ready and rejoin.executed
    assert call.leaves == [fake.bot_user.id, call.listener.user_id, bob.id]
    newcomer = call.members[bob.id]
    assert recovered_code is not None
    assert recovered_code == call.listener.session.voice_privacy_code == newcomer.session.voice_privacy_code
    assert errors == [None]
    heard = sound(fake.voice_packets(guild))
    # Every frame the listener decrypted is one the bot sent, in order (a frame made while the bot
    # was out of the group may be lost, as for any listener) ...
    remaining = iter(packets)
    assert all(any(p.opus == sent for sent in remaining) for p in heard)
    # ... and everything after the recovery was end-to-end encrypted and reached both members.
    recovered = heard[-len(source.phases[1]) :]
    assert [p.opus for p in recovered] == source.phases[1] and loud(recovered)
    assert all(p.dave and newcomer.heard[p.sequence] == p.opus for p in recovered)


def test_dave_gateway_proposals_are_signed_as_members_verify_and_commits_split_from_welcomes() -> None:
    channel_id, sender, impostor = 1234, ExternalSender(), ExternalSender()
    bot, listener = (davey.DaveSession(1, user_id, channel_id) for user_id in (11, 22))
    for session in (bot, listener):
        session.set_external_sender(sender.package())
    key_package = listener.get_serialized_key_package()
    assert key_package_user_id(key_package) == 22
    append = davey.ProposalsOperationType.append
    for forged in (impostor.add(channel_id, 0, key_package), sender.add(channel_id, 1, key_package)):
        with pytest.raises(ValueError):  # wrong signer, wrong epoch: a member refuses both
            bot.process_proposals(append, proposals_payload([forged]))
    committed = bot.process_proposals(append, proposals_payload([sender.add(channel_id, 0, key_package)]))
    assert committed is not None and committed.welcome is not None
    commit, welcome = split_commit_welcome(committed.commit + committed.welcome)
    assert (commit.message, welcome) == (committed.commit, committed.welcome)
    assert (commit.epoch, commit.committer, commit.group_id) == (0, 0, channel_id.to_bytes(8, "big"))
    bot.process_commit(commit.message)
    listener.process_welcome(welcome)
    assert bot.epoch == listener.epoch == 1 and bot.voice_privacy_code == listener.voice_privacy_code
