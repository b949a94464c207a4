"""/apikey on the loopback Discord: an admin makes a key (shown once, privately) that the library accepts,
lists it, revokes it and it stops working; members without Manage Server can neither use the commands
nor see the keys' names."""

from __future__ import annotations

import re

from tests.e2e.conftest import World
from tests.fakediscord.models import Perm

KEY = re.compile(r"vbk_[0-9a-f]{12}_[0-9a-f]{64}")


async def test_an_admin_creates_lists_and_revokes_a_key(world: World):
    commands = {c["name"]: c for c in world.fake.commands()}
    assert int(commands["apikey"]["default_member_permissions"]) == Perm.MANAGE_GUILD
    assert {o["name"] for o in commands["apikey"]["options"]} == {"create", "list", "revoke"}

    created = await world.fake.invoke("apikey create", {"name": "CI"}, user=world.admin)
    reply = await created.wait_for_answer()
    assert created.ephemeral and "shown only this once" in reply.content
    assert "Authorization: Bearer" in reply.content
    (full_key,) = KEY.findall(reply.content)
    assert f"```\n{full_key}\n```" in reply.content
    store = world.bot.store
    key = store.api_key_for(full_key)
    assert (key.guild_id, key.created_by, key.name) == (world.guild.id, world.admin.id, "CI")

    listing = await world.fake.invoke("apikey list", {}, user=world.admin)
    shown = await listing.wait_for_answer()
    description = shown.embeds[0]["description"]
    assert listing.ephemeral and "**CI**" in description and key.id in description
    assert f"<@{world.admin.id}>" in description and "never used" in description
    assert full_key.split("_")[2] not in description

    choices = await world.fake.autocomplete("apikey revoke", {"key": "c"}, focused="key", user=world.admin)
    assert [c["value"] for c in await choices.wait_for_choices()] == [key.id]
    revoked = await world.fake.invoke("apikey revoke", {"key": key.id}, user=world.admin)
    told = await revoked.wait_for_answer()
    assert revoked.ephemeral and "Revoked the API key “CI”" in told.content and key.id in told.content
    assert store.api_key_for(full_key) is None and store.api_keys(world.guild.id) == []

    again = await world.fake.invoke("apikey revoke", {"key": "CI"}, user=world.admin)
    assert "no API key called “CI”" in (await again.wait_for_answer()).content
    empty = await world.fake.invoke("apikey list", {}, user=world.admin)
    assert "no API keys" in (await empty.wait_for_answer()).content


async def test_members_without_manage_server_are_refused_and_see_no_key_names(world: World):
    _, full_key = world.bot.store.create_api_key(world.guild.id, created_by=world.admin.id, name="CI")
    for name, options in [
        ("apikey create", {"name": "mine"}),
        ("apikey list", {}),
        ("apikey revoke", {"key": "CI"}),
    ]:
        record = await world.fake.invoke(name, options, user=world.alice)
        answer = await record.wait_for_answer()
        assert answer.ephemeral and "Manage Server" in answer.content, (name, answer.content)
        assert "CI" not in answer.content
    choices = await world.fake.autocomplete("apikey revoke", {"key": ""}, focused="key", user=world.alice)
    assert await choices.wait_for_choices() == []
    keys = world.bot.store.api_keys(world.guild.id)
    assert [k.name for k in keys] == ["CI"] and world.bot.store.api_key_for(full_key) == keys[0]
    # another server's admin neither sees nor revokes this server's key
    other_admin = world.fake.add_member(world.other_guild, "Dana", permissions=Perm.MANAGE_GUILD)
    theirs = await world.fake.invoke("apikey revoke", {"key": keys[0].id}, user=other_admin)
    assert "no API key called" in (await theirs.wait_for_answer()).content
    assert world.bot.store.api_key_for(full_key) == keys[0]
