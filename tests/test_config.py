"""Settings from the environment and `.env`, including credentials that other clients read themselves."""

from __future__ import annotations

import os

import pytest

from bot.config import ConfigError, load_config
from bot.tts import readiness


@pytest.fixture
def clean_modal_env(monkeypatch):
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.setenv(name, "placeholder")  # so that undo removes what load_config exports
        monkeypatch.delenv(name)
    monkeypatch.setenv("MODAL_CONFIG_PATH", "/nonexistent/.modal.toml")


def test_modal_credentials_in_dotenv_reach_the_modal_client(tmp_path, clean_modal_env):
    from modal.config import config as modal_config

    dotenv = tmp_path / ".env"
    dotenv.write_text('MODAL_TOKEN_ID=ak-fromfile\nexport MODAL_TOKEN_SECRET="as-fromfile"\n')
    assert not readiness.modal_credentials()
    load_config(dotenv=dotenv)
    assert modal_config.get("token_id") == "ak-fromfile" and modal_config.get("token_secret") == "as-fromfile"
    assert readiness.modal_credentials()


def test_the_environment_wins_over_dotenv(tmp_path, clean_modal_env, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("MODAL_TOKEN_ID=ak-fromfile\nVOICEBOT_MAX_TEXT_CHARS=500\n# a comment\n")
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-fromenv")
    monkeypatch.setenv("VOICEBOT_MAX_TEXT_CHARS", "800")
    config = load_config(dotenv=dotenv)
    assert os.environ["MODAL_TOKEN_ID"] == "ak-fromenv" and config.max_text_chars == 800


def test_a_bad_value_in_dotenv_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICEBOT_MAX_TEXT_CHARS", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("VOICEBOT_MAX_TEXT_CHARS=lots\n")
    with pytest.raises(ConfigError, match="VOICEBOT_MAX_TEXT_CHARS='lots' is not a number"):
        load_config(dotenv=dotenv)


def test_every_command_reads_service_settings_from_dotenv(tmp_path, clean_modal_env, monkeypatch, capsys):
    """`deploy` and `weights fetch` open no library, yet Modal, Hugging Face and the app's ECHO_* settings
    in `.env` must reach them (before: `voicebot deploy` said "No Modal credentials")."""
    from bot.cli import deploy, main

    for name in ("HF_TOKEN", "ECHO_GPU"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "MODAL_TOKEN_ID=ak-fromfile\nMODAL_TOKEN_SECRET=as-fromfile\nHF_TOKEN=hf-fromfile\nECHO_GPU=H100\n"
    )
    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    capsys.readouterr()
    assert readiness.modal_credentials()
    assert os.environ["HF_TOKEN"] == "hf-fromfile"
    from bot.cli import build_parser

    assert deploy.settings(build_parser().parse_args(["deploy"]))["ECHO_GPU"] == "H100"
