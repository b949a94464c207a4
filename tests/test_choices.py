"""bot.choices: each fixed choice list is named once, and every place that offers it offers that list."""

from __future__ import annotations

import pytest

from bot import choices, config, store, tts
from bot.errors import InvalidInput
from cogs.say import Say
from cogs.settings import Settings


def option_choices(command: object) -> dict[str, list[str]]:
    return {p.name: [c.value for c in p.choices] for p in command.parameters if p.choices}


def test_the_choice_lists_are_the_ones_users_know() -> None:
    assert choices.MODES == ("auto", "file", "channel")
    assert choices.FILE_FORMATS == ("ogg", "mp3")
    assert choices.BACKENDS == ("modal", "local")


def test_slash_command_options_offer_exactly_the_defined_choices() -> None:
    say = next(c for c in Say.__cog_app_commands__ if c.name == "say")
    assert option_choices(say) == {"mode": list(choices.MODES)}
    assert option_choices(Settings.settings) == {
        "default_mode": list(choices.MODES),
        "file_format": list(choices.FILE_FORMATS),
    }


def test_store_and_backends_use_the_same_lists() -> None:
    assert store.MODES is choices.MODES and store.FILE_FORMATS is choices.FILE_FORMATS
    assert tts.BACKENDS is choices.BACKENDS
    assert store.GuildSettings(1).default_mode in choices.MODES
    assert store.GuildSettings(1).file_format in choices.FILE_FORMATS


def test_config_refuses_a_backend_outside_the_list() -> None:
    with pytest.raises(InvalidInput, match="allowed is modal or local"):
        config.check(config.Config(backend="cloud"))
