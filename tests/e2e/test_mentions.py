"""Mentions read aloud: members the bot has not cached are named, hidden channels never are.

The bot asks for no members intent, so (as on Discord) it caches only itself and members in voice
channels; everyone else a text mentions has to come from the message's data or a fetch. What the
bot meant to say is what it handed the speech backend (`backend.texts`): the tiny model's audio
is not intelligible.
"""

from __future__ import annotations

import pytest

from bot import mentions
from tests.e2e.conftest import World
from tests.fakediscord.models import Channel, Member, Perm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def say(world: World, words: str, *, user: Member) -> str:
    """Run /say as `user` and wait for the spoken file; returns everything handed to the backend."""
    record = await world.fake.invoke("say", {"text": words, "voice": "Ada"}, user=user)
    await record.wait_for(lambda r: r.kind == "edit" and "🗣️" in (r.content or ""), timeout=30)
    return " ".join(world.backend.texts)


async def speak_message(world: World, channel: Channel, author: Member, words: str, *, user: Member) -> str:
    """`author` posts `words`; `user` runs "Speak message" on it. Returns what reached the backend."""
    world.bot.store.set_default_voice(world.guild.id, user.id, "Ada")
    message = world.fake.add_message(channel, author, words)
    record = await world.fake.invoke_message_command("Speak message", message=message, user=user)
    await record.wait_for(lambda r: r.kind == "edit" and "🗣️" in (r.content or ""), timeout=30)
    return " ".join(world.backend.texts)


def member_fetches(world: World) -> list[tuple[str, int]]:
    """(path, status) of every GET of one guild member the bot made."""
    return [
        (r.path, r.status)
        for r in world.fake.requests
        if r.method == "GET" and r.path.startswith(f"/guilds/{world.guild.id}/members/")
    ]


async def overwrites_seen(world: World, channel: Channel, count: int) -> None:
    """Wait until the bot's cache holds `count` permission overwrites on `channel`."""

    def seen() -> bool:
        cached = world.bot.get_channel(channel.id)
        return cached is not None and len(cached.overwrites) == count

    await world.fake.wait_until(seen, timeout=5)


def is_cached(world: World, member: Member) -> bool:
    return world.bot.get_guild(member.guild_id).get_member(member.id) is not None


@pytest.fixture
def ada(world: World) -> None:
    world.add_voice("Ada", world.alice)


@pytest.mark.usefixtures("ada")
async def test_say_names_an_uncached_member_by_their_nickname_and_fetches_only_them(world: World):
    dave = world.fake.add_member(world.guild, "dave", nick="Captain Dave")
    await world.join_voice(world.bob)  # a member in voice is cached: no fetch needed
    assert not is_cached(world, dave) and is_cached(world, world.bob)

    spoken = await say(world, f"Thanks <@!{dave.id}> and <@{world.bob.id}>.", user=world.alice)

    assert "Captain Dave" in spoken and "Bob" in spoken and "someone" not in spoken
    assert member_fetches(world) == [(f"/guilds/{world.guild.id}/members/{dave.id}", 200)]


@pytest.mark.usefixtures("ada")
async def test_say_reads_someone_for_a_mention_discord_does_not_know_and_still_speaks(world: World):
    dave = world.fake.add_member(world.guild, "dave", nick="Captain Dave")
    # Carol is in the other guild only: Discord answers 404 Unknown Member for her here.
    spoken = await say(world, f"Hello <@{world.carol.id}> and <@{dave.id}>!", user=world.alice)

    assert spoken.count("someone") == 1 and "Captain Dave" in spoken and "Carol" not in spoken
    statuses = dict(member_fetches(world))
    assert statuses[f"/guilds/{world.guild.id}/members/{world.carol.id}"] == 404


@pytest.mark.usefixtures("ada")
async def test_a_member_fetch_that_never_answers_is_given_up_on(world: World, monkeypatch):
    dave = world.fake.add_member(world.guild, "dave", nick="Captain Dave")
    monkeypatch.setattr(mentions, "FETCH_TIMEOUT_S", 0.2)
    # Far longer than the bot waits, however fast or slow this machine is.
    world.fake.arm_fault(f"GET /guilds/*/members/{dave.id}", "slow", delay=5.0)

    spoken = await say(world, f"Hello <@{dave.id}>!", user=world.alice)

    assert "someone" in spoken and "Dave" not in spoken
    assert [path for path, _ in member_fetches(world)] == [f"/guilds/{world.guild.id}/members/{dave.id}"]


@pytest.mark.usefixtures("ada")
async def test_say_fetches_a_bounded_number_of_members(world: World):
    crowd = [world.fake.add_member(world.guild, f"m{n}", nick=f"Nick{n}") for n in range(7)]
    words = "Hi " + ", ".join(f"<@{m.id}>" for m in crowd) + f", and <@{crowd[0].id}> again."

    spoken = await say(world, words, user=world.alice)

    limit = mentions.MAX_FETCHED_MEMBERS
    assert len(member_fetches(world)) == limit
    named = [m.nick for m in crowd if m.nick in spoken]
    assert named == [m.nick for m in crowd[:limit]]  # the first ones, in the order they were typed
    assert spoken.count("someone") == len(crowd) - limit


@pytest.mark.usefixtures("ada")
async def test_speak_message_names_an_uncached_member_and_a_role(world: World):
    dave = world.fake.add_member(world.guild, "dave", nick="Captain Dave")
    mods = world.fake.add_role(world.guild, "Moderators")
    assert not is_cached(world, dave)

    spoken = await speak_message(
        world, world.text_channel, world.bob, f"Ping <@{dave.id}> or <@&{mods.id}>.", user=world.alice
    )

    assert "Captain Dave" in spoken and "Moderators" in spoken
    assert "someone" not in spoken and "a role" not in spoken


@pytest.mark.usefixtures("ada")
async def test_speak_message_reads_the_users_own_name_when_their_membership_is_unknown(world: World):
    dave = world.fake.add_member(world.guild, "dave", nick="Captain Dave")
    # Dave left after the message was posted: the message still carries his user, not a member.
    world.fake.arm_fault(f"GET /guilds/*/members/{dave.id}", "error", status=404, code=10007)

    spoken = await speak_message(
        world, world.text_channel, world.bob, f"Ask <@{dave.id}> about it.", user=world.alice
    )

    assert "Dave" in spoken and "someone" not in spoken
    assert member_fetches(world) == [(f"/guilds/{world.guild.id}/members/{dave.id}", 404)]


@pytest.mark.usefixtures("ada")
async def test_a_channel_hidden_from_the_member_is_never_named(world: World):
    secret = world.fake.add_text_channel(world.guild, "secret-plans")
    world.fake.set_channel_permissions(secret, world.guild.everyone, deny=Perm.VIEW_CHANNEL)
    world.fake.set_channel_permissions(secret, world.bob, allow=Perm.VIEW_CHANNEL)
    await overwrites_seen(world, secret, 2)

    said = await say(world, f"Meet in <#{secret.id}> now.", user=world.alice)
    assert "secret" not in said.lower() and "no-access" in said  # as Discord shows it to her

    # Bob, who can see it, wrote it; Alice, who can't, has it read to her.
    world.backend.texts.clear()
    read = await speak_message(
        world, world.text_channel, world.bob, f"Plans are in <#{secret.id}>.", user=world.alice
    )
    assert "secret" not in read.lower() and "no-access" in read


@pytest.mark.usefixtures("ada")
async def test_channels_the_member_can_see_are_named(world: World):
    secret = world.fake.add_text_channel(world.guild, "secret-plans")
    insiders = world.fake.add_role(world.guild, "Insiders")
    world.fake.set_channel_permissions(secret, world.guild.everyone, deny=Perm.VIEW_CHANNEL)
    world.fake.set_channel_permissions(secret, insiders, allow=Perm.VIEW_CHANNEL)
    insider = world.fake.add_member(world.guild, "ivy", roles=[insiders])
    await overwrites_seen(world, secret, 2)

    # A file in a channel everyone reads: only what everyone there can see is named …
    spoken = await say(world, f"See <#{secret.id}> and <#{world.text_channel.id}>.", user=insider)
    assert "secret-plans" not in spoken and "no-access" in spoken and world.text_channel.name in spoken

    # … live, to listeners who can all see it, it is.
    world.backend.texts.clear()
    other_insider = world.fake.add_member(world.guild, "ian", roles=[insiders])
    await world.join_voice(insider)
    await world.join_voice(other_insider)
    record = await world.fake.invoke("say", {"text": f"See <#{secret.id}>.", "voice": "Ada"}, user=insider)
    await record.wait_for(lambda r: "Speaking now" in (r.content or ""), timeout=30)
    await world.fake.wait_until(lambda: world.backend.texts, timeout=30)
    assert "secret-plans" in " ".join(world.backend.texts)


@pytest.mark.usefixtures("ada")
async def test_a_file_names_a_private_channel_only_where_everyone_reading_can_see_it(world: World):
    insiders = world.fake.add_role(world.guild, "Insiders")
    insider = world.fake.add_member(world.guild, "ivy", roles=[insiders])
    plans, lounge = (world.fake.add_text_channel(world.guild, name) for name in ("secret-plans", "lounge"))
    for channel in (plans, lounge):  # the same private audience for both
        world.fake.set_channel_permissions(channel, world.guild.everyone, deny=Perm.VIEW_CHANNEL)
        world.fake.set_channel_permissions(channel, insiders, allow=Perm.VIEW_CHANNEL)
        await overwrites_seen(world, channel, 2)

    record = await world.fake.invoke(
        "say", {"text": f"See <#{plans.id}>.", "voice": "Ada"}, user=insider, channel=lounge
    )
    await record.wait_for(lambda r: r.kind == "edit" and "🗣️" in (r.content or ""), timeout=30)
    assert "secret-plans" in " ".join(world.backend.texts)  # everyone who reads #lounge sees it


@pytest.mark.usefixtures("ada")
async def test_live_speech_naming_a_channel_stops_when_someone_who_cannot_see_it_joins(world: World):
    insiders = world.fake.add_role(world.guild, "Insiders")
    insider = world.fake.add_member(world.guild, "ivy", roles=[insiders])
    plans = world.fake.add_text_channel(world.guild, "secret-plans")
    world.fake.set_channel_permissions(plans, world.guild.everyone, deny=Perm.VIEW_CHANNEL)
    world.fake.set_channel_permissions(plans, insiders, allow=Perm.VIEW_CHANNEL)
    await overwrites_seen(world, plans, 2)
    await world.join_voice(insider)

    words = f"The plans are in <#{plans.id}>, and they are long. " * 4
    record = await world.fake.invoke("say", {"text": words, "voice": "Ada"}, user=insider)
    await record.wait_for(lambda r: "Speaking now" in (r.content or ""), timeout=30)
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=60)
    await world.join_voice(world.bob)  # can't see #secret-plans
    told = await record.wait_for(lambda r: "can't see a channel it names" in (r.content or ""), timeout=60)
    assert told.ephemeral
