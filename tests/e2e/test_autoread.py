"""Auto-read on the loopback Discord: opted-in members are read aloud in their own voice, in order."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import World
from tests.fakediscord.models import Perm


@pytest.fixture
def message_content() -> bool:
    return True


async def _set_up(world: World, *members, **settings) -> None:
    """Voices for `members` (their defaults), the text channel read aloud, and everyone opted in."""
    for member in members:
        world.add_voice(f"{member.name} voice", member)
        await (
            await world.fake.invoke("voice default", {"name": f"{member.name} voice"}, user=member)
        ).wait_for_answer()
        await (await world.fake.invoke("autoread me", {"state": "on"}, user=member)).wait_for_answer()
    added = await world.fake.invoke("autoread channel add", {"channel": world.text_channel}, user=world.admin)
    await added.wait_for_answer()
    if settings:
        await (await world.fake.invoke("autoread settings", settings, user=world.admin)).wait_for_answer()


def _heard(world: World) -> list[str]:
    return [t.removeprefix("[S1] ") for t in world.backend.texts]


async def _hear(world: World, more: int) -> list[str]:
    """Wait until `more` further messages reached the engine, skipping each as it plays but the last."""
    start = len(world.backend.texts)
    for n in range(start + 1, start + more + 1):
        await world.fake.wait_until(lambda n=n: len(world.backend.texts) >= n, timeout=60)
        if n < start + more:
            await (await world.fake.invoke("skip", {}, user=world.admin)).wait_for_answer()
    return _heard(world)


async def test_an_opted_in_member_is_read_in_their_own_voice_and_others_are_not(world: World):
    await _set_up(world, world.alice)
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)  # in voice, but not opted in
    world.fake.add_message(world.text_channel, world.bob, "Bob was never asked.")
    world.fake.add_message(world.text_channel, world.alice, "Hello from Alice!")
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=60)
    assert world.fake.bot_voice_channel(world.guild).id == world.voice_channel.id  # joined on the post
    assert _heard(world) == ["Alice says, Hello from Alice!"]
    # What was heard counts against Alice's usage, as a /say would.
    await world.fake.wait_until(lambda: world.bot.limits.reserved_seconds(world.guild.id) == 0, timeout=60)
    assert world.bot.store.db.execute("select user_id from usage").fetchall() == [(world.alice.id,)]


async def test_two_members_are_read_in_order_naming_the_speaker_only_when_it_changes(world: World):
    await _set_up(world, world.alice, world.bob)
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)
    for author, words in (
        (world.alice, "One."),
        (world.alice, "Two."),
        (world.bob, "Three."),
        (world.alice, "Four."),
    ):
        world.fake.add_message(world.text_channel, author, words)
    heard = await _hear(world, 4)
    assert heard == ["Alice says, One.", "Two.", "Bob says, Three.", "Alice says, Four."]


async def test_ignore_rules_and_the_dictionary_apply(world: World):
    shy = world.fake.add_role(world.guild, "Shy")
    robot = world.fake.add_member(world.guild, "Robot", bot=True)
    await _set_up(world, world.alice, who_spoke="off", ignore_prefix="!", max_length=40, ignore_role=shy)
    await (
        await world.fake.invoke("dictionary add", {"word": "gif", "spoken_as": "jiff"}, user=world.admin)
    ).wait_for_answer()
    await world.join_voice(world.alice)
    hook = world.fake.add_webhook(world.text_channel)
    post = world.fake.add_message
    post(world.text_channel, world.alice, "!command ignored")
    post(world.text_channel, robot, "beep from a bot")
    post(world.text_channel, hook, "a webhook speaks")
    post(world.text_channel, world.alice, "quiet please", silent=True)
    post(world.text_channel, world.alice, "https://example.com/only-a-link")
    post(world.text_channel, world.alice, "", attachments=[("photo.png", b"\x89PNG\r\n\x1a\n")])
    post(world.text_channel, world.alice, "A gif for you.")
    post(world.text_channel, world.alice, "This message goes on and on far beyond forty characters.")
    await _hear(world, 2)
    await (
        await world.fake.invoke(
            "autoread settings", {"say_links": True, "say_attachments": True}, user=world.admin
        )
    ).wait_for_answer()
    post(world.text_channel, world.alice, "https://example.com/only-a-link")
    post(world.text_channel, world.alice, "", attachments=[("photo.png", b"\x89PNG\r\n\x1a\n")])
    await (await world.fake.invoke("skip", {}, user=world.admin)).wait_for_answer()
    heard = await _hear(world, 2)
    assert heard == [
        "A jiff for you.",
        "This message goes on and on far beyond, and so on.",
        "A link.",
        "An image.",
    ]
    # A member with an ignored role is skipped too.
    shy_member = world.fake.add_member(world.guild, "Dana", roles=[shy])
    await _set_up(world, shy_member)
    await world.join_voice(shy_member)
    post(world.text_channel, shy_member, "I am shy.")
    post(world.text_channel, world.alice, "Last one.")
    await (await world.fake.invoke("skip", {}, user=world.admin)).wait_for_answer()
    assert (await _hear(world, 1))[-1] == "Last one."


async def test_edits_deletes_and_floods_take_messages_out_before_they_are_spoken(world: World):
    await _set_up(world, world.alice, who_spoke="off", queue_limit=2)
    await world.join_voice(world.alice)
    post = world.fake.add_message
    post(world.text_channel, world.alice, "Playing now.")
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=60)
    edited = post(world.text_channel, world.alice, "Edited before it was read.")
    deleted = post(world.text_channel, world.alice, "Deleted before it was read.")
    world.fake.edit_message(edited, "Changed my mind.")
    world.fake.delete_message(deleted)
    for n in range(4):  # a flood: only the newest two wait
        post(world.text_channel, world.alice, f"Flood {n}.")
    # Wait for the flood's end: a queue of three is also reached on the way (Flood 0 and 1 waiting).
    await world.fake.wait_until(
        lambda: [i.title for i in world.bot.playback.queue(world.guild.id)][1:] == ["Flood 2.", "Flood 3."],
        timeout=30,
    )
    await (await world.fake.invoke("skip", {}, user=world.admin)).wait_for_answer()  # "Playing now."
    heard = await _hear(world, 2)
    assert heard == ["Playing now.", "Flood 2.", "Flood 3."]


async def test_a_channel_some_listener_cannot_see_is_never_read(world: World):
    await _set_up(world, world.alice)
    secret = world.fake.add_text_channel(world.guild, "secret")
    await (
        await world.fake.invoke("autoread channel add", {"channel": secret}, user=world.admin)
    ).wait_for_answer()
    world.fake.set_channel_permissions(secret, world.bob, deny=Perm.VIEW_CHANNEL)
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)  # Bob listens, and can't see #secret
    world.fake.add_message(secret, world.alice, "Only for some eyes.")
    world.fake.add_message(world.text_channel, world.alice, "For everyone.")
    assert await _hear(world, 1) == ["Alice says, For everyone."]


def _outcomes(world: World) -> list[tuple[str, str]]:
    """(title, ending) of every item the bot's voice queue finished, as it reports them."""
    seen: list[tuple[str, str]] = []
    report = world.bot.playback.report

    def recording(item, outcome):
        seen.append((item.title, outcome.ending.value))
        report(item, outcome)

    world.bot.playback.report = recording
    return seen


async def _secret_channel(world: World, hidden_from) -> object:
    secret = world.fake.add_text_channel(world.guild, "secret")
    await (
        await world.fake.invoke("autoread channel add", {"channel": secret}, user=world.admin)
    ).wait_for_answer()
    world.fake.set_channel_permissions(secret, hidden_from, deny=Perm.VIEW_CHANNEL)
    await _overwrites_seen(world, secret)
    return secret


async def _overwrites_seen(world: World, channel) -> None:
    def seen() -> bool:
        cached = world.bot.get_channel(channel.id)
        return cached is not None and len(cached.overwrites) == 1

    await world.fake.wait_until(seen, timeout=5)


async def test_someone_who_joins_after_a_private_message_was_queued_never_hears_it(world: World):
    await _set_up(world, world.alice, who_spoke="off")
    secret = await _secret_channel(world, world.bob)
    outcomes = _outcomes(world)
    await world.join_voice(world.alice)
    world.fake.add_message(world.text_channel, world.alice, "Playing first.")
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=60)
    world.fake.add_message(secret, world.alice, "Only for some eyes.")  # Alice alone listens: queued
    await world.fake.wait_until(lambda: len(world.bot.playback.queue(world.guild.id)) == 2, timeout=30)
    await world.join_voice(world.bob)  # Bob can't see #secret, and joins before its turn
    await (await world.fake.invoke("skip", {}, user=world.admin)).wait_for_answer()
    await world.fake.wait_until(lambda: len(outcomes) == 2, timeout=60)
    assert [ending for _, ending in outcomes] == ["skipped", "withheld"], outcomes
    world.fake.add_message(world.text_channel, world.alice, "After.")
    assert await _hear(world, 1) == ["Playing first.", "After."]  # the private one never reached the engine


async def test_someone_who_cannot_see_it_joining_mid_message_stops_it(world: World):
    await _set_up(world, world.alice, who_spoke="off")
    secret = await _secret_channel(world, world.bob)
    outcomes = _outcomes(world)
    await world.join_voice(world.alice)
    world.fake.add_message(secret, world.alice, "A private thought that takes a while to say. " * 5)
    await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=60)
    assert world.bot.playback.queue(world.guild.id)  # still speaking when Bob comes in
    await world.join_voice(world.bob)
    await world.fake.wait_until(lambda: outcomes, timeout=60)
    assert [ending for _, ending in outcomes] == ["withheld"]


async def test_a_channel_named_in_a_message_is_named_only_if_every_listener_can_see_it(world: World):
    await _set_up(world, world.alice, who_spoke="off")
    secret = world.fake.add_text_channel(world.guild, "secret-plans")
    world.fake.set_channel_permissions(secret, world.bob, deny=Perm.VIEW_CHANNEL)
    await _overwrites_seen(world, secret)
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)
    world.fake.add_message(world.text_channel, world.alice, f"Plans are in <#{secret.id}>.")
    assert await _hear(world, 1) == ["Plans are in no-access."]


async def test_auto_read_speaks_only_in_a_members_own_voice(world: World):
    """Anyone may /say in any voice, but auto-read reads a member as themselves: a voice they own or
    one cloned from them; someone else's default is refused, and the server's fallback is used instead."""
    await _set_up(world, world.bob)  # Bob's own voice, "Bob voice"
    impostor = await world.fake.invoke("voice default", {"name": "Bob voice"}, user=world.alice)
    await impostor.wait_for_answer()
    opted = await world.fake.invoke("autoread me", {"state": "on"}, user=world.alice)
    told = await opted.wait_for_answer()
    assert "“Bob voice” isn't yours" in told.content and "nothing is read" in told.content
    await world.join_voice(world.alice)
    await world.join_voice(world.bob)
    world.fake.add_message(world.text_channel, world.alice, "I am Bob, honestly.")
    world.fake.add_message(world.text_channel, world.bob, "I really am Bob.")
    assert await _hear(world, 1) == ["Bob says, I really am Bob."]  # Alice was not read as Bob

    # A voice cloned from Alice's own recording is hers, whoever owns it.
    hers = world.add_voice("Alice sample", world.bob)
    world.bot.store.db.execute("update voices set speaker_id = ? where id = ?", [world.alice.id, hers.id])
    await (
        await world.fake.invoke("voice default", {"name": "Alice sample"}, user=world.alice)
    ).wait_for_answer()
    world.fake.add_message(world.text_channel, world.alice, "Now it is me.")
    await (await world.fake.invoke("skip", {}, user=world.admin)).wait_for_answer()
    assert (await _hear(world, 1))[-1] == "Alice says, Now it is me."
