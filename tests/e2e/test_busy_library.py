"""The library locked by another process (a backup, an `sqlite3` shell): the bot keeps answering."""

from __future__ import annotations

from tests.e2e.conftest import World
from tests.sqlite_lock import write_lock_held


async def test_a_write_lock_held_elsewhere_freezes_no_command_and_a_write_says_busy(world: World):
    world.add_voice("Ada", world.alice)
    with write_lock_held(world.bot.config.data_dir):
        # Reads answer in every server while the lock is held.
        listing = await world.fake.invoke("voices", {}, user=world.bob)
        assert "Ada" in str((await listing.wait_for_answer()).embeds)
        other = await world.fake.invoke("voices", {}, user=world.carol)
        assert "no voices yet" in (await other.wait_for_answer()).content
        shown = await world.fake.invoke("settings", {}, user=world.admin)
        assert (await shown.wait_for_answer()).embeds

        # A write is acknowledged within Discord's 3 s (the fake refuses a late one), then says busy.
        renamed = await world.fake.invoke(
            "voice rename", {"name": "Ada", "new_name": "Grace"}, user=world.alice
        )
        await renamed.wait_for_callback()
        busy = await renamed.wait_for(lambda r: "busy" in (r.content or ""), timeout=30)
        assert "nothing was changed" in busy.content and "Try again" in busy.content

        # Meanwhile another server's command is not held up by the waiting write.
        again = await world.fake.invoke("voices", {}, user=world.carol)
        assert "no voices yet" in (await again.wait_for_answer()).content

    assert world.bot.store.get(world.guild.id, "Ada").name == "Ada"
    renamed = await world.fake.invoke("voice rename", {"name": "Ada", "new_name": "Grace"}, user=world.alice)
    done = await renamed.wait_for(lambda r: "Renamed" in (r.content or ""), timeout=10)
    assert "“Ada” to “Grace”" in done.content
