"""/dictionary: admins teach the bot words; /say and Speak message both say them that way."""

from __future__ import annotations

from tests.e2e.conftest import World


async def test_the_dictionary_changes_what_say_and_speak_message_send_to_the_engine(world: World):
    world.add_voice("Ada", world.alice)
    denied = await world.fake.invoke("dictionary add", {"word": "gif", "spoken_as": "jiff"}, user=world.alice)
    assert "Manage Server" in (await denied.wait_for_answer()).content
    added = await world.fake.invoke("dictionary add", {"word": "GIF", "spoken_as": "jiff"}, user=world.admin)
    assert (await added.wait_for_answer()).content == "“GIF” is now said as “jiff”."
    refused = await world.fake.invoke(
        "dictionary add", {"word": "hi", "spoken_as": "<@1> hi"}, user=world.admin
    )
    told = await refused.wait_for_answer()
    assert told.ephemeral and "markup, a mention" in told.content

    say = await world.fake.invoke("say", {"text": "Send me a gif, please.", "voice": "Ada"}, user=world.alice)
    await say.wait_for(lambda r: "🗣️" in (r.content or ""), timeout=30)
    await (await world.fake.invoke("voice default", {"name": "Ada"}, user=world.bob)).wait_for_answer()
    channel = world.text_channel
    message = world.fake.add_message(channel, world.alice, "That GIF was great")
    spoken = await world.fake.invoke_message_command("Speak message", message=message, user=world.bob)
    await spoken.wait_for(lambda r: "🗣️" in (r.content or ""), timeout=30)
    heard = " ".join(world.backend.texts)
    assert (
        "Send me a jiff, please." in heard and "That jiff was great" in heard and "gif" not in heard.lower()
    )

    listing = await world.fake.invoke("dictionary list", {}, user=world.bob)
    assert "**GIF** → jiff" in (await listing.wait_for_answer()).embeds[0]["description"]
    replaced = await world.fake.invoke(
        "dictionary add", {"word": "gif", "spoken_as": "giff"}, user=world.admin
    )
    assert (await replaced.wait_for_answer()).content == "“gif” is now said as “giff” instead of “jiff”."
    removed = await world.fake.invoke("dictionary remove", {"word": "gif"}, user=world.admin)
    assert "said as written again" in (await removed.wait_for_answer()).content
    empty = await world.fake.invoke("dictionary list", {}, user=world.bob)
    assert "empty" in (await empty.wait_for_answer()).content
