"""Self-tests of the fake's Discord limits (``tests/fakediscord/limits``): one per rule.

Most check the pure functions over JSON payloads; the last ones go through the real discord.py
client, to prove a refusal reaches the bot as ``discord.HTTPException`` with Discord's code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import discord
import discord.http
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord, UploadedFile
from tests.fakediscord.leftovers import DISCORD_THREADS, assert_nothing_left_behind
from tests.fakediscord.limits import (
    CHANNEL_MESSAGE_FLAGS,
    DEFERRED_FLAGS,
    FOLLOWUP_FLAGS,
    RESPONSE_FLAGS,
    Refusal,
    autocomplete_refusal,
    command_sync_refusal,
    edited_flags,
    is_valid_slash_name,
    kept_flags,
    message_refusal,
    modal_refusal,
)

EPHEMERAL, SUPPRESS_EMBEDS, SILENT, VOICE, V2 = 64, 4, 4096, 8192, 32768


@pytest.fixture
async def leaves_nothing_behind() -> AsyncIterator[None]:
    yield
    await assert_nothing_left_behind(DISCORD_THREADS)


def errors_at(refusal: Refusal | None, *path: str | int) -> list[str]:
    """The ``_errors`` codes Discord put at ``path`` (``[]`` if none)."""
    assert refusal is not None and refusal.code == 50035, refusal
    node: Any = refusal.errors
    for key in path:
        node = node.get(str(key), {})
    return [e["code"] for e in node.get("_errors", [])]


def option(name: str = "text", kind: int = 3, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "description": "What to say", **extra}


def slash(name: str = "say", options: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": 1, "description": "Say something.", "options": options or [], **extra}


def choices(count: int, *, name: str = "c", value: Any = None) -> list[dict[str, Any]]:
    return [{"name": f"{name}{i}", "value": f"v{i}" if value is None else value} for i in range(count)]


def upload(
    index: int = 0, filename: str = "voice-message.ogg", content_type: str = "audio/ogg"
) -> UploadedFile:
    return UploadedFile(filename, b"OggS", content_type, content_type, index)


# -- command sync ---------------------------------------------------------------------------------


def test_a_realistic_command_set_is_accepted() -> None:
    commands = [
        slash(
            "say",
            [
                option("text", required=True, max_length=4000),
                option("voice", autocomplete=True),
                option("mode", choices=choices(3)),
                option("seed", 4, min_value=0, max_value=2**31 - 1, choices=choices(2, value=7)),
            ],
        ),
        slash(
            "voice",
            [
                option("info", 1, options=[option("name", required=True)]),
                option(
                    "admin", 2, options=[option("purge", 1), option("audit", 1, options=[option("who", 6)])]
                ),
            ],
        ),
        {"name": "Speak message", "type": 3},
        {"name": "Speak message", "type": 2},  # same name, another type: allowed
        {"name": "say", "type": 2},
    ]
    assert command_sync_refusal(commands, guild=False) is None


@pytest.mark.parametrize(
    "name",
    ["say", "नमस्ते", "सुनो-ज़रा", "สวัสดี", "พูด_เลย", "日本語", "ünïcödé", "don't", "a" * 32, "x1-2_3"],
)
def test_slash_names_discord_accepts(name: str) -> None:
    assert is_valid_slash_name(name)
    assert command_sync_refusal([slash(name, [option(name)])], guild=True) is None


@pytest.mark.parametrize("name", ["Say", "Ωmega", "say it", "a.b", "say!", "🎙️", "", "a" * 33, "İstanbul"])
def test_slash_names_discord_refuses(name: str) -> None:
    assert not is_valid_slash_name(name)
    refusal = command_sync_refusal([slash(name)], guild=False)
    [code] = errors_at(refusal, 0, "name")
    expected = "APPLICATION_COMMAND_INVALID_NAME" if 1 <= len(name) <= 32 else "BASE_TYPE_"
    assert code.startswith(expected)


@pytest.mark.parametrize(
    ("commands", "path", "code"),
    [
        ([slash(description="x" * 101)], (0, "description"), "BASE_TYPE_BAD_LENGTH"),
        ([slash(description="")], (0, "description"), "BASE_TYPE_REQUIRED"),
        ([slash(options=[option(f"o{i}") for i in range(26)])], (0, "options"), "BASE_TYPE_MAX_LENGTH"),
        (
            [slash(options=[option(choices=choices(26))])],
            (0, "options", 0, "choices"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [slash(options=[option(choices=choices(1, name="n" * 101))])],
            (0, "options", 0, "choices", 0, "name"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [slash(options=[option(choices=choices(1, value="v" * 101))])],
            (0, "options", 0, "choices", 0, "value"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [slash(options=[option(kind=4, choices=choices(1, value="seven"))])],
            (0, "options", 0, "choices", 0, "value"),
            "NUMBER_TYPE_COERCE",
        ),
        ([slash(options=[option("Text")])], (0, "options", 0, "name"), "APPLICATION_COMMAND_INVALID_NAME"),
        (
            [slash(options=[option(description="d" * 101)])],
            (0, "options", 0, "description"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [slash(options=[option("voice"), option("text", required=True)])],
            (0, "options", 1),
            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
        ),
        (
            [slash(options=[option("text"), option("text")])],
            (0, "options", 1, "name"),
            "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
        ),
        (
            [slash(options=[option(kind=5, choices=choices(2))])],
            (0, "options", 0, "choices"),
            "APPLICATION_COMMAND_OPTION_CHOICES_INVALID",
        ),
        (
            [slash(options=[option(autocomplete=True, choices=choices(2))])],
            (0, "options", 0, "autocomplete"),
            "AUTOCOMPLETE_INVALID",
        ),
        ([slash(options=[option(max_length=6001)])], (0, "options", 0, "max_length"), "NUMBER_TYPE_MAX"),
        (
            [slash(options=[option("sub", 1, options=[option("inner", 1)])])],
            (0, "options", 0, "options", 0, "type"),
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
        ),
        (
            [slash(options=[option("group", 2, options=[option("inner", 2)])])],
            (0, "options", 0, "options", 0, "type"),
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
        ),
        (
            [slash(options=[option("sub", 1), option("text")])],
            (0, "options", 1, "type"),
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
        ),
        (
            [slash(name_localizations={"fr": "Dire"})],
            (0, "name_localizations", "fr"),
            "APPLICATION_COMMAND_INVALID_NAME",
        ),
        (
            [
                slash(
                    options=[
                        option(f"o{i}", choices=choices(25, name="n" * 98, value="v" * 100)) for i in range(2)
                    ]
                )
            ],
            (0,),
            "APPLICATION_COMMAND_TOO_LARGE",
        ),
        ([{"name": "A" * 33, "type": 3}], (0, "name"), "BASE_TYPE_BAD_LENGTH"),
        (
            [{"name": "Speak", "type": 3, "options": [option()]}],
            (0, "options"),
            "APPLICATION_COMMAND_OPTIONS_INVALID",
        ),
        ([slash("say"), slash("say")], (1,), "APPLICATION_COMMANDS_DUPLICATE_NAME"),
        ([{"name": "Launch", "type": 4}], (0, "type"), "APPLICATION_COMMAND_INVALID_TYPE"),
    ],
)
def test_command_rules(commands: list[dict[str, Any]], path: tuple[str | int, ...], code: str) -> None:
    refusal = command_sync_refusal(commands, guild=True)
    assert code in errors_at(refusal, *path), refusal


def test_context_menu_names_may_use_spaces_and_capitals() -> None:
    menus = [{"name": "Speak This Message", "type": 3}, {"name": "Clone Voice", "type": 2}]
    assert command_sync_refusal(menus, guild=False) is None


def test_command_counts_per_type() -> None:
    full = (
        [slash(f"c{i}") for i in range(100)]
        + [{"name": f"U{i}", "type": 2} for i in range(15)]
        + [{"name": f"M{i}", "type": 3} for i in range(15)]
    )
    assert command_sync_refusal(full, guild=False) is None
    too_many = [[*full[:101], slash("c100")], full[100:116], [*full[115:], {"name": "M15", "type": 3}]]
    too_many[1].append({"name": "U15", "type": 2})
    for commands in too_many:
        refusal = command_sync_refusal(commands, guild=True)
        assert refusal is not None and (refusal.status, refusal.code, refusal.errors) == (400, 30032, None)
    assert errors_at(command_sync_refusal([*full, slash("c100")], guild=False)) == ["BASE_TYPE_MAX_LENGTH"]


# -- messages -------------------------------------------------------------------------------------


def embed(**fields: Any) -> dict[str, Any]:
    return {"title": "Voices", **fields}


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def button(custom_id: str | None = "b", **extra: Any) -> dict[str, Any]:
    data = {"type": 2, "style": 1, "label": "Go", **extra}
    if custom_id is not None:
        data["custom_id"] = custom_id
    return data


def select(options: int = 2) -> dict[str, Any]:
    return {
        "type": 3,
        "custom_id": "pick",
        "options": [{"label": f"o{i}", "value": str(i)} for i in range(options)],
    }


def test_messages_at_the_limits_are_accepted() -> None:
    biggest = embed(
        title="t" * 256,
        description="d" * 4096,
        fields=[{"name": "n", "value": "v" * 30} for _ in range(25)],
        footer={"text": "f" * 400},
        author={"name": "a" * 256},
    )
    rows = [row(*(button(f"{r}-{i}-" + "x" * 96, label="b" * 80) for i in range(5))) for r in range(5)]
    accepted = [
        {"content": "x" * 2000},
        {"embeds": [biggest]},
        {"embeds": [embed(description="d" * 500) for _ in range(10)]},
        {"content": "", "components": rows},
        {"content": " ", "attachments": [{"id": i} for i in range(10)]},
    ]
    for body in accepted:
        files = [upload(i, "take.mp3", "audio/mpeg") for i in range(10)] if "attachments" in body else []
        assert message_refusal(body, files) is None, body
    assert message_refusal({}, [upload()]) is None  # a file alone is a message


@pytest.mark.parametrize(
    ("body", "path", "code"),
    [
        ({"content": "x" * 2001}, ("content",), "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [embed() for _ in range(11)]}, ("embeds",), "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [embed(title="t" * 257)]}, ("embeds", 0, "title"), "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [embed(description="d" * 4097)]}, ("embeds", 0, "description"), "BASE_TYPE_MAX_LENGTH"),
        (
            {"embeds": [embed(fields=[{"name": "n", "value": "v"}] * 26)]},
            ("embeds", 0, "fields"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            {"embeds": [embed(fields=[{"name": "n" * 257, "value": "v"}])]},
            ("embeds", 0, "fields", 0, "name"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            {"embeds": [embed(fields=[{"name": "n", "value": "v" * 1025}])]},
            ("embeds", 0, "fields", 0, "value"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            {"embeds": [embed(fields=[{"name": "n", "value": "  "}])]},
            ("embeds", 0, "fields", 0, "value"),
            "BASE_TYPE_REQUIRED",
        ),
        (
            {"embeds": [embed(footer={"text": "f" * 2049})]},
            ("embeds", 0, "footer", "text"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            {"embeds": [embed(author={"name": "a" * 257})]},
            ("embeds", 0, "author", "name"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            {
                "embeds": [
                    embed(title=None, description="d" * 4000),
                    embed(title=None, description="e" * 2001),
                ]
            },
            ("embeds",),
            "MAX_EMBED_SIZE_EXCEEDED",
        ),
        (
            {"content": "x", "attachments": [{"id": 0, "description": "d" * 1025}]},
            ("attachments", 0, "description"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        ({"content": "x", "sticker_ids": ["1", "2", "3", "4"]}, ("sticker_ids",), "BASE_TYPE_MAX_LENGTH"),
    ],
)
def test_message_field_rules(body: dict[str, Any], path: tuple[str | int, ...], code: str) -> None:
    assert code in errors_at(message_refusal(body), *path)
    # The same rule holds in interaction responses, under ``data``.
    assert code in errors_at(message_refusal(body, prefix=("data",)), "data", *path)


def test_at_most_ten_attachments_after_create_or_edit() -> None:
    files = [upload(i, f"{i}.ogg") for i in range(11)]
    assert errors_at(message_refusal({"content": "x"}, files), "attachments") == ["BASE_TYPE_MAX_LENGTH"]
    current = {"content": "", "attachments": [{"id": str(i)} for i in range(10)]}
    assert errors_at(message_refusal({}, [upload()], current=current), "attachments") == [
        "BASE_TYPE_MAX_LENGTH"
    ]
    kept = {"attachments": [{"id": "3"}, {"id": 0}]}  # the listed ones replace the others
    assert message_refusal(kept, [upload()], current=current) is None


@pytest.mark.parametrize(
    ("body", "current"),
    [
        ({}, None),
        ({"content": ""}, None),
        ({"content": "   \n"}, None),  # Discord trims content
        ({"content": None, "embeds": [], "components": [], "attachments": []}, None),
        ({"content": ""}, {"content": "Speaking…"}),  # an edit that leaves nothing
        ({"attachments": []}, {"content": "", "attachments": [{"id": "1"}]}),
    ],
)
def test_an_empty_message_is_refused_with_50006(body: dict[str, Any], current: dict[str, Any] | None) -> None:
    refusal = message_refusal(body, current=current)
    assert refusal is not None and (refusal.status, refusal.code) == (400, 50006)
    assert refusal.message == "Cannot send an empty message"


def test_edits_keep_what_they_do_not_replace() -> None:
    current = {"content": "", "embeds": [embed()], "attachments": [{"id": "1"}]}
    assert message_refusal({"content": ""}, current=current) is None
    assert message_refusal({"embeds": []}, current=current) is None  # the attachment stays


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        ([row(button(f"b{i}")) for i in range(6)], ("components",), "BASE_TYPE_MAX_LENGTH"),
        (
            [row(*(button(f"b{i}") for i in range(6)))],
            ("components", 0, "components"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        ([row()], ("components", 0, "components"), "BASE_TYPE_BAD_LENGTH"),
        ([row(button("x" * 101))], ("components", 0, "components", 0, "custom_id"), "BASE_TYPE_BAD_LENGTH"),
        (
            [row(button("same"), button("same"))],
            ("components", 0, "components", 1, "custom_id"),
            "COMPONENT_CUSTOM_ID_DUPLICATED",
        ),
        ([row(button(None))], ("components", 0, "components", 0, "custom_id"), "BASE_TYPE_REQUIRED"),
        (
            [row(button("b", label="l" * 81))],
            ("components", 0, "components", 0, "label"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        ([row(button(None, style=5))], ("components", 0, "components", 0, "url"), "BASE_TYPE_REQUIRED"),
        ([row(select(26))], ("components", 0, "components", 0, "options"), "BASE_TYPE_BAD_LENGTH"),
        ([row(select(), button("b"))], ("components", 0, "components"), "COMPONENT_LAYOUT_WIDTH_EXCEEDED"),
        ([button("b")], ("components", 0, "type"), "UNION_TYPE_CHOICES"),
    ],
)
def test_component_rules(components: list[dict[str, Any]], path: tuple[str | int, ...], code: str) -> None:
    assert code in errors_at(message_refusal({"content": "x", "components": components}), *path)


def test_components_v2_messages_hold_components_only() -> None:
    display = {"type": 10, "content": "Hello"}
    assert message_refusal({"components": [display]}, flags=V2) is None
    refusal = message_refusal({"content": "Hello", "components": [display]}, flags=V2)
    assert errors_at(refusal, "content") == ["MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2"]
    assert errors_at(message_refusal({"components": [display] * 41}, flags=V2), "components")


WAVEFORM = base64.b64encode(bytes(range(64))).decode()
VOICE_ENTRY = {"id": 0, "filename": "voice-message.ogg", "duration_secs": 2.5, "waveform": WAVEFORM}


@pytest.mark.parametrize(
    ("body", "files", "code"),
    [
        ({"attachments": [VOICE_ENTRY]}, [upload()], None),
        ({"content": "hi", "attachments": [VOICE_ENTRY]}, [upload()], 50159),
        ({"embeds": [embed()], "attachments": [VOICE_ENTRY]}, [upload()], 50159),
        ({"components": [row(button())], "attachments": [VOICE_ENTRY]}, [upload()], 50159),
        ({"attachments": [VOICE_ENTRY, {**VOICE_ENTRY, "id": 1}]}, [upload(), upload(1)], 50160),
        ({"attachments": [VOICE_ENTRY]}, [upload(content_type="image/png")], 50160),
        ({}, [], 50160),
        ({"attachments": [{**VOICE_ENTRY, "waveform": None}]}, [upload()], 50161),
        (
            {"attachments": [{k: v for k, v in VOICE_ENTRY.items() if k != "duration_secs"}]},
            [upload()],
            50161,
        ),
    ],
)
def test_voice_message_rules(body: dict[str, Any], files: list[UploadedFile], code: int | None) -> None:
    refusal = message_refusal(body, files, flags=VOICE)
    assert (refusal and refusal.code) == code, refusal


def test_each_route_keeps_only_the_flags_discord_lets_bots_set() -> None:
    asked = EPHEMERAL | SUPPRESS_EMBEDS | SILENT | VOICE | 1  # 1 = CROSSPOSTED, never settable
    assert kept_flags(asked, CHANNEL_MESSAGE_FLAGS) == SUPPRESS_EMBEDS | SILENT | VOICE  # no ephemeral
    assert kept_flags(asked, RESPONSE_FLAGS) == EPHEMERAL | SUPPRESS_EMBEDS | SILENT | VOICE
    assert kept_flags(asked, DEFERRED_FLAGS) == EPHEMERAL
    assert kept_flags(asked, FOLLOWUP_FLAGS) == EPHEMERAL | SUPPRESS_EMBEDS | SILENT
    assert edited_flags(SILENT, SUPPRESS_EMBEDS | EPHEMERAL) == SILENT | SUPPRESS_EMBEDS
    assert edited_flags(SILENT | SUPPRESS_EMBEDS, 0) == SILENT
    assert edited_flags(V2, 0) == V2  # Components V2 cannot be switched off
    assert edited_flags(EPHEMERAL, None) == EPHEMERAL


# -- modals and autocomplete ----------------------------------------------------------------------


def text_input(**extra: Any) -> dict[str, Any]:
    return {"type": 4, "custom_id": "name", "style": 1, "label": "Name for the voice", **extra}


def modal(*components: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"custom_id": "clone-voice", "title": "Clone this voice", "components": list(components), **extra}


def test_modals_in_both_layouts_are_accepted() -> None:
    labelled = {"type": 18, "label": "Name", "component": {"type": 4, "custom_id": "n", "style": 2}}
    assert modal_refusal(modal(row(text_input()), labelled, {"type": 10, "content": "Hi"})) is None


@pytest.mark.parametrize(
    ("data", "path", "code"),
    [
        (modal(row(text_input()), title="t" * 46), ("title",), "BASE_TYPE_BAD_LENGTH"),
        (modal(row(text_input()), title=""), ("title",), "BASE_TYPE_REQUIRED"),
        (modal(row(text_input()), custom_id="c" * 101), ("custom_id",), "BASE_TYPE_BAD_LENGTH"),
        (modal(), ("components",), "BASE_TYPE_BAD_LENGTH"),
        (
            modal(*(row(text_input(custom_id=f"i{i}")) for i in range(6))),
            ("components",),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            modal(row(text_input(label="l" * 46))),
            ("components", 0, "components", 0, "label"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            modal(row(text_input(max_length=4001))),
            ("components", 0, "components", 0, "max_length"),
            "NUMBER_TYPE_MAX",
        ),
        (
            modal({"type": 18, "label": "l" * 46, "component": text_input()}),
            ("components", 0, "label"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            modal(row(text_input()), row(text_input())),
            ("components", 1, "components", 0, "custom_id"),
            "COMPONENT_CUSTOM_ID_DUPLICATED",
        ),
    ],
)
def test_modal_rules(data: dict[str, Any], path: tuple[str | int, ...], code: str) -> None:
    assert code in errors_at(modal_refusal(data), "data", *path)


def test_autocomplete_rules() -> None:
    assert autocomplete_refusal({"choices": choices(25)}) is None
    assert autocomplete_refusal({"choices": [{"name": "seven", "value": 7}]}) is None
    assert errors_at(autocomplete_refusal({"choices": choices(26)}), "data", "choices") == [
        "BASE_TYPE_MAX_LENGTH"
    ]
    too_long = autocomplete_refusal({"choices": choices(1, name="n" * 101)})
    assert errors_at(too_long, "data", "choices", 0, "name") == ["BASE_TYPE_BAD_LENGTH"]


# -- through the real discord.py client ------------------------------------------------------------


def make_client(fake: FakeDiscord) -> tuple[discord.Client, app_commands.CommandTree]:
    client = discord.Client(
        intents=discord.Intents.default(), connector=fake.connector(), guild_ready_timeout=0.1
    )
    return client, app_commands.CommandTree(client)


@pytest.mark.usefixtures("leaves_nothing_behind")
async def test_a_101_character_description_fails_the_sync(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.add_guild()
    client, tree = make_client(fake)

    @tree.command(description="d" * 101)
    async def say(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("hi")

    async with fake.running(client):
        with pytest.raises(discord.HTTPException) as refused:
            await tree.sync()
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert "description" in refused.value.text and fake.commands() == []
    [log] = fake.refused_requests
    assert log.path.endswith("/commands") and "0.description" in (log.refusal or "")


@pytest.mark.usefixtures("leaves_nothing_behind")
async def test_devanagari_and_thai_command_names_sync_and_run(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)

    @tree.command(name="बोलो", description="Say something.")
    async def bolo(interaction: discord.Interaction, पाठ: str) -> None:
        await interaction.response.send_message(f"बोला: {पाठ}")

    @tree.command(name="พูด", description="Say something.")
    async def phut(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("สวัสดี")

    async with fake.running(client):
        await tree.sync()
        hindi = await fake.invoke("बोलो", {"पाठ": "नमस्ते"}, user=alice)
        thai = await fake.invoke("พูด", user=alice)
        assert (await hindi.wait_for_callback()).content == "बोला: नमस्ते"
        assert (await thai.wait_for_callback()).content == "สวัสดี"
    assert not fake.refused_requests


@pytest.mark.usefixtures("leaves_nothing_behind")
async def test_refusals_reach_the_bot_as_http_exceptions(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)
    codes: list[int] = []

    async def attempt(call: Any) -> None:
        try:
            await call
        except discord.HTTPException as error:
            codes.append(error.code)

    @tree.command()
    async def post(interaction: discord.Interaction) -> None:
        """Try what Discord refuses, then answer."""
        await attempt(interaction.response.send_message())  # empty: 50006
        huge = [discord.Embed(description="d" * 4000), discord.Embed(description="e" * 2001)]
        await attempt(interaction.response.send_message(embeds=huge))  # 6001 characters: 50035
        await interaction.response.defer(thinking=True)
        await attempt(interaction.followup.send("x" * 2001))  # too long: 50035
        route = discord.http.Route(
            "POST", "/channels/{channel_id}/messages", channel_id=interaction.channel_id
        )
        payload = {"flags": 8192, "embeds": [{"title": "Hi"}], "attachments": [VOICE_ENTRY]}
        form = [
            {"name": "payload_json", "value": json.dumps(payload)},
            {
                "name": "files[0]",
                "value": b"OggS",
                "filename": "voice-message.ogg",
                "content_type": "audio/ogg",
            },
        ]
        await attempt(interaction.client.http.request(route, form=form, files=[]))  # voice + embed: 50159
        await interaction.followup.send(f"refused {codes}")

    async with fake.running(client):
        await tree.sync()
        record = await fake.invoke("post", user=alice)
        reply = await record.wait_for(lambda r: "refused" in (r.content or ""))

    assert reply.content == "refused [50006, 50035, 50035, 50159]"
    assert record.callback_type == 5 and len(record.rejected) == 3
    assert [log.status for log in fake.refused_requests] == [400, 400, 400, 400]
    assert "data.embeds: Embed size exceeds maximum size of 6000" in (fake.refused_requests[1].refusal or "")


@pytest.mark.usefixtures("leaves_nothing_behind")
async def test_26_autocomplete_choices_are_refused(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    alice = fake.add_member(guild, "alice")
    client, tree = make_client(fake)

    @tree.command()
    async def say(interaction: discord.Interaction, voice: str) -> None:
        """Speak in a cloned voice."""
        await interaction.response.send_message(voice)

    @say.autocomplete("voice")
    async def voices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f"voice {i}", value=str(i)) for i in range(26)]

    async with fake.running(client):
        await tree.sync()
        typing = await fake.autocomplete("say", {"voice": "v"}, focused="voice", user=alice)
        await fake.wait_until(lambda: typing.rejected)
    assert typing.choices is None and "data.choices: Must be 25 or fewer in length." in typing.rejected[0]
