"""`.env.example` lists every setting the bot reads, and parses as the bot parses `.env`."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import _ENV, read_dotenv

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def test_every_setting_is_in_env_example():
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    assert set(_ENV.values()) <= listed
    assert {"MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"} <= listed


def test_env_example_sets_nothing_but_an_empty_token():
    assert read_dotenv(EXAMPLE) == {"DISCORD_TOKEN": ""}


def test_env_example_lists_the_deploy_and_weights_settings():
    from bot.cli.deploy import SETTINGS

    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    assert {var for _, var, _, _ in SETTINGS} <= listed
    assert {"HF_TOKEN", "HF_ENDPOINT", "ECHO_WEIGHTS_REVISION_ECHO", "ECHO_WEIGHTS_REVISION_DAC"} <= listed
