"""Self-tests of the fake's sharding, through the real discord.py 2.7 client: ``GET /gateway/bot``
(recommended shards, session start limit), IDENTIFY's ``shard: [id, count]`` routing each guild's
events to the session of shard ``(guild_id >> 22) % count`` (DMs to shard 0), the closes 4010
(Invalid shard) and 4011 (Sharding required), and the IDENTIFY rate limit per concurrency bucket
(op 9 INVALID_SESSION ``d: false`` for an IDENTIFY that comes too early).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord
from tests.fakediscord.leftovers import DISCORD_THREADS, assert_nothing_left_behind
from tests.fakediscord.state import IdentifyRecord

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
async def leaves_nothing_behind() -> AsyncIterator[None]:
    yield
    await assert_nothing_left_behind(DISCORD_THREADS)


class QuickShardedClient(discord.AutoShardedClient):
    """An AutoShardedClient whose later IDENTIFYs wait 0.05 s instead of discord.py's 5 s: the fake,
    not the client, has to keep the IDENTIFYs of one bucket apart."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(0.05)


def sharded(fake: FakeDiscord, **options: Any) -> QuickShardedClient:
    return QuickShardedClient(
        intents=discord.Intents.default(), connector=fake.connector(), guild_ready_timeout=0.1, **options
    )


def sent(fake: FakeDiscord, shard: tuple[int, int], event: str) -> list[dict[str, Any]]:
    """The ``d`` of every ``event`` the fake sent the session of ``shard``."""
    [session] = [s for s in fake.gateway_sessions if s.shard == shard]
    return [frame["d"] for frame in session.backlog if frame["t"] == event]


async def gateway_bot(fake: FakeDiscord) -> Any:
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with http.get(fake.api_base + "/gateway/bot", headers=headers) as response:
            return json.loads(await response.text())


def ready(fake: FakeDiscord) -> list[IdentifyRecord]:
    return [r for r in fake.identifies if r.outcome == "ready"]


async def test_each_shard_gets_only_its_guilds_messages_and_interactions(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guilds = [fake.add_guild(f"Guild {n}", shard=(n % 2, 2)) for n in range(8)]
    on_shard = {i: {g.id for g in guilds if (g.id >> 22) % 2 == i} for i in (0, 1)}
    assert all(len(ids) == 4 for ids in on_shard.values())
    members = {g.id: fake.add_member(g, f"user{n}") for n, g in enumerate(guilds)}

    clients: list[discord.Client] = []
    heard: dict[int, list[int]] = {0: [], 1: []}  # message ids (no Message Content intent here)
    clicked: dict[int, list[int]] = {0: [], 1: []}
    trees: list[app_commands.CommandTree] = []
    for shard_id in (0, 1):
        client = discord.Client(
            intents=discord.Intents.default(),
            connector=fake.connector(),
            guild_ready_timeout=0.1,
            shard_id=shard_id,
            shard_count=2,
        )
        tree = app_commands.CommandTree(client)

        def listen(client: discord.Client, tree: app_commands.CommandTree, shard_id: int) -> None:
            @tree.command()
            async def ping(interaction: discord.Interaction) -> None:
                """Say which shard answers."""
                await interaction.response.send_message(f"pong from shard {shard_id}", ephemeral=True)

            @client.event
            async def on_message(message: discord.Message) -> None:
                heard[shard_id].append(message.id)

            @client.event
            async def on_interaction(interaction: discord.Interaction) -> None:
                clicked[shard_id].append(interaction.guild_id or 0)

        listen(client, tree, shard_id)
        clients.append(client)
        trees.append(tree)

    async with fake.running(clients[0]), fake.running(clients[1]):
        for shard_id, client in enumerate(clients):
            assert {g.id for g in client.guilds} == on_shard[shard_id]
            shard = (shard_id, 2)
            [ready_event] = sent(fake, shard, "READY")
            assert ready_event["shard"] == [shard_id, 2]
            assert {int(g["id"]) for g in ready_event["guilds"]} == on_shard[shard_id]
            assert {int(g["id"]) for g in sent(fake, shard, "GUILD_CREATE")} == on_shard[shard_id]

        await trees[0].sync()
        await fake.wait_for_commands("ping")
        posted = {g.id: fake.add_message(g.text_channels[0], members[g.id], "hello").id for g in guilds}
        dm = fake.add_dm_message(members[guilds[1].id], "a DM")  # DMs: shard 0 only, as on Discord
        answers = {}
        for guild in guilds[:2]:  # guild 0 is on shard 0, guild 1 on shard 1
            record = await fake.invoke("ping", user=members[guild.id])
            answers[guild.id] = (await record.wait_for_callback()).content
        late = fake.add_guild("Late", shard=(1, 2))  # joined while running: GUILD_CREATE to shard 1
        await fake.wait_until(lambda: clients[1].get_guild(late.id) is not None)
        await fake.wait_until(lambda: len(heard[0]) == 5 and len(heard[1]) == 4, describe=lambda: f"{heard}")

        for shard_id in (0, 1):
            created = sent(fake, (shard_id, 2), "MESSAGE_CREATE")
            assert {int(m["guild_id"]) for m in created if "guild_id" in m} == on_shard[shard_id]
        assert clients[0].get_guild(late.id) is None
        assert late.id not in {int(g["id"]) for g in sent(fake, (0, 2), "GUILD_CREATE")}

    assert set(heard[0]) == {dm.id, *(posted[g] for g in on_shard[0])}
    assert set(heard[1]) == {posted[g] for g in on_shard[1]}
    assert answers == {guilds[0].id: "pong from shard 0", guilds[1].id: "pong from shard 1"}
    assert clicked == {0: [guilds[0].id], 1: [guilds[1].id]}
    assert [(r.shard, r.outcome) for r in fake.identifies] == [((0, 2), "ready"), ((1, 2), "ready")]


async def test_gateway_bot_reports_the_configured_shards_and_session_start_limit(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    fake.sharding.shards = 2
    fake.sharding.total, fake.sharding.remaining = 1000, 10
    fake.sharding.reset_after, fake.sharding.max_concurrency = 86_400_000, 2
    guilds = [fake.add_guild(f"Guild {n}", shard=(n % 2, 2)) for n in range(4)]

    before = await gateway_bot(fake)
    assert before["session_start_limit"]["remaining"] == 10
    client = sharded(fake)  # no shard_count: discord.py asks GET /gateway/bot how many
    async with fake.running(client):
        assert client.shard_count == 2 and sorted(client.shards) == [0, 1]
        assert {g.id for g in client.guilds} == {g.id for g in guilds}
        assert {client.get_guild(g.id).shard_id for g in guilds} == {0, 1}
        limits = await client.fetch_session_start_limits()
        body = await gateway_bot(fake)

    assert sorted(s.shard for s in ready(fake)) == [(0, 2), (1, 2)]
    assert (limits.total, limits.remaining, limits.reset_after, limits.max_concurrency) == (
        1000,
        8,  # two sessions started
        86_400_000,
        2,
    )
    assert body["shards"] == 2 and body["url"] == fake.gateway_url
    assert body["session_start_limit"] == {
        "total": 1000,
        "remaining": 8,
        "reset_after": 86_400_000,
        "max_concurrency": 2,
    }
    assert [log.path for log in fake.requests].count("/gateway/bot") == 4  # 1 launch, 1 fetch, 2 here


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0)])
async def test_an_invalid_shard_is_closed_with_4010(
    fake_discord: FakeDiscord, shard: tuple[int, int]
) -> None:
    fake = fake_discord
    fake.add_guild()
    shard_id, count = shard
    client = discord.Client(
        intents=discord.Intents.default(),
        connector=fake.connector(),
        shard_id=shard_id,
        shard_count=count,
    )
    with pytest.raises(discord.ConnectionClosed) as closed:
        async with fake.running(client):
            pass
    assert closed.value.code == 4010 and closed.value.shard_id == shard_id
    assert fake.gateway.close_codes == [4010] and not fake.gateway_sessions
    assert [(r.shard, r.outcome, r.close_code) for r in fake.identifies] == [(shard, "closed", 4010)]
    assert fake.sharding.remaining == 1000  # no session started


async def test_an_unsharded_bot_in_too_many_guilds_is_closed_with_4011(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.sharding.max_guilds_per_shard = 2  # Discord: 2,500
    for n in range(3):
        fake.add_guild(f"Guild {n}", shard=(n % 2, 2))
    client = discord.Client(intents=discord.Intents.default(), connector=fake.connector())
    with pytest.raises(discord.ConnectionClosed) as closed:
        async with fake.running(client):
            pass
    assert closed.value.code == 4011
    assert fake.gateway.close_codes == [4011] and not fake.gateway_sessions
    assert [(r.shard, r.close_code) for r in fake.identifies] == [((0, 1), 4011)]

    client = sharded(fake, shard_count=2)  # two shards of at most 2 guilds each: accepted
    async with fake.running(client):
        assert len(client.guilds) == 3
    assert sorted(r.shard for r in ready(fake)) == [(0, 2), (1, 2)]


async def test_one_identify_per_bucket_per_window(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.sharding.identify_window = 0.3
    fake.sharding.max_concurrency = 1  # both shards share bucket 0
    for n in range(4):
        fake.add_guild(f"Guild {n}", shard=(n % 2, 2))

    client = sharded(fake, shard_count=2)
    async with fake.running(client):
        assert len(client.guilds) == 4
    first, second = ready(fake)
    assert (first.shard, second.shard) == ((0, 2), (1, 2)) and first.bucket == second.bucket == 0
    assert second.at - first.at >= 0.3  # the fake kept them apart
    for record in fake.identifies:  # anything in between was turned away with op 9, never closed
        assert record.outcome in ("ready", "invalid_session")
        if record.outcome == "invalid_session":
            assert record.shard == (1, 2) and first.at <= record.at < first.at + 0.3
    assert fake.sharding.remaining == 1000 - 2

    # max_concurrency 2: shard 0 is bucket 0, shard 1 bucket 1, and neither waits for the other.
    fake.sharding.identifies.clear()
    fake.sharding.max_concurrency = 2
    fake.sharding.identify_window = 60.0
    client = sharded(fake, shard_count=2)
    async with fake.running(client):
        assert len(client.guilds) == 4
    assert [(r.shard, r.bucket, r.outcome) for r in fake.identifies] == [
        ((0, 2), 0, "ready"),
        ((1, 2), 1, "ready"),
    ]


async def test_an_identify_too_early_for_its_bucket_gets_invalid_session_false(
    fake_discord: FakeDiscord,
) -> None:
    """The same rule on raw websockets, with a window no machine is slow enough to outlast."""
    fake = fake_discord
    fake.sharding.identify_window = 60.0
    fake.sharding.max_concurrency = 2
    fake.add_guild()

    async def identify(
        http: aiohttp.ClientSession, shard: list[int]
    ) -> tuple[aiohttp.ClientWebSocketResponse, Any]:
        ws = await http.ws_connect(fake.gateway_url)
        hello = await ws.receive_json()
        assert hello["op"] == 10
        payload = {"token": fake.token, "intents": 1, "properties": {}, "shard": shard}
        await ws.send_json({"op": 2, "d": payload})
        return ws, await ws.receive_json()

    async with aiohttp.ClientSession() as http:
        first, answer = await identify(http, [0, 4])
        assert (answer["op"], answer["t"]) == (0, "READY")
        other_bucket, answer = await identify(http, [1, 4])
        assert (answer["op"], answer["t"]) == (0, "READY")
        same_bucket, answer = await identify(http, [2, 4])  # 2 % 2 == 0 % 2: too early
        assert answer == {"op": 9, "s": None, "t": None, "d": False}
        for ws in (first, other_bucket, same_bucket):
            await ws.close()

    assert [(r.shard, r.bucket, r.outcome) for r in fake.identifies] == [
        ((0, 4), 0, "ready"),
        ((1, 4), 1, "ready"),
        ((2, 4), 0, "invalid_session"),
    ]
    assert fake.sharding.remaining == 1000 - 2
