"""Start-up checks of the speech backend: what an admin must fix is one typed error with one wording;
a passing Modal outage is a warning. Modal is looked up through injected handles (no token, no network)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import modal.exception as mx
import pytest

from bot.errors import (
    BackendNotDeployed,
    BackendUnauthorised,
    EngineNotInstalled,
    LocalEngineUnavailable,
    ModalCredentialsMissing,
)
from bot.tts import readiness
from bot.tts.local_backend import LocalBackend
from bot.tts.modal_backend import ModalBackend
from modal_tts import prerequisites
from tests.machine import closed_port, without_engine

FIX = "uv sync --locked --extra engine"
NO_CONFIG = {"MODAL_CONFIG_PATH": "/nonexistent/modal.toml"}
TOKEN = {"MODAL_TOKEN_ID": "ak-test", "MODAL_TOKEN_SECRET": "as-test", **NO_CONFIG}


def fill(folder: Path, files: tuple[str, ...] = prerequisites.WEIGHT_FILES) -> Path:
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"weights")
    return folder


def test_each_weights_folder_problem_is_one_line_naming_the_fix(tmp_path):
    def problem(folder):
        found = readiness.weights_problem(folder)
        return found.detail if found else None

    assert "ECHO_WEIGHTS_DIR" in problem(None)
    assert "doesn't exist" in problem(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert problem(tmp_path / "empty") == (
        f"The weights folder {tmp_path / 'empty'} holds no weights: fill it with "
        f"`voicebot weights fetch {tmp_path / 'empty'}`."
    )
    (tmp_path / "file").write_text("x")
    assert "is a file" in problem(tmp_path / "file")
    partial = fill(tmp_path / "partial", prerequisites.WEIGHT_FILES[:1])
    assert "lacks echo/pca_state.safetensors, dac/pytorch_model.safetensors" in problem(partial)
    assert problem(fill(tmp_path / "full")) is None


def test_local_without_the_engine_extra_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(prerequisites, "missing_packages", lambda: ["torch", "echo_tts"])
    with pytest.raises(EngineNotInstalled) as raised:
        readiness.check_setup("local", fill(tmp_path))
    assert raised.value.detail == (
        "The local speech backend needs the engine extra (torch, echo-tts; missing here: torch, echo_tts): "
        f"run `{FIX}`."
    )
    assert raised.value.exit_code == 2


def test_local_with_an_empty_weights_folder_is_refused_before_loading(tmp_path):
    with pytest.raises(LocalEngineUnavailable) as raised:
        readiness.check_setup("local", tmp_path)
    assert "holds no weights" in raised.value.detail
    readiness.check_setup("local", fill(tmp_path))  # complete: nothing raised


def test_modal_without_credentials_is_its_own_error(tmp_path):
    with pytest.raises(ModalCredentialsMissing) as raised:
        readiness.check_setup("modal", None, NO_CONFIG)
    assert "No Modal credentials" in raised.value.admin_message and raised.value.exit_code == 2
    readiness.check_setup("modal", None, TOKEN)
    config = tmp_path / "modal.toml"
    config.write_text("[default]\n")
    readiness.check_setup("modal", None, {"MODAL_CONFIG_PATH": str(config)})


class Lookup:
    """Stands in for `modal.Cls.from_name(...)`: `.hydrate.aio()` succeeds or raises."""

    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome
        self.hydrate = type("H", (), {"aio": self._hydrate})()
        self.calls = 0

    async def _hydrate(self) -> None:
        self.calls += 1
        if self.outcome is not None:
            raise self.outcome


def backend_with(outcome: BaseException | None) -> tuple[ModalBackend, Lookup]:
    lookup = Lookup(outcome)
    return ModalBackend(
        lookup=lambda: pytest.fail("no method is called"), lookup_class=lambda: lookup
    ), lookup


@pytest.fixture
def modal_answers(monkeypatch):
    monkeypatch.setattr(readiness, "modal_unreachable", lambda: None)


async def test_a_deployed_app_passes_without_starting_a_container(modal_answers):
    backend, lookup = backend_with(None)
    assert await readiness.check_backend("modal", None, backend, TOKEN) is None
    assert lookup.calls == 1


async def test_an_app_not_deployed_or_a_rejected_token_stops_the_start(modal_answers, monkeypatch):
    for name, value in TOKEN.items():
        monkeypatch.setenv(name, value)
    backend, _ = backend_with(mx.NotFoundError("App 'echo-voicebot' not found"))
    with pytest.raises(BackendNotDeployed):
        await readiness.check_backend("modal", None, backend, TOKEN)
    backend, _ = backend_with(mx.AuthError("token rejected"))
    with pytest.raises(BackendUnauthorised) as raised:
        await readiness.check_backend("modal", None, backend, TOKEN)
    assert not isinstance(raised.value, ModalCredentialsMissing)  # a token exists: Modal refused it


async def test_a_passing_modal_outage_is_a_warning(modal_answers):
    backend, _ = backend_with(mx.ConnectionError("Could not connect to the Modal server."))
    warning = await readiness.check_backend("modal", None, backend, TOKEN)
    assert warning is not None and "Could not connect to the Modal server" in warning
    assert "Starting anyway" in warning


async def test_modal_unreachable_is_found_in_seconds_and_warned(monkeypatch):
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{closed_port()}")
    backend, lookup = backend_with(None)
    warning = await readiness.check_backend("modal", None, backend, TOKEN)
    assert warning is not None and warning.startswith("Can't reach Modal at 127.0.0.1")
    assert lookup.calls == 0  # no lookup that would wait a minute on Modal's own retries


async def test_no_credentials_map_to_the_same_error_from_a_modal_call(monkeypatch):
    monkeypatch.setenv("MODAL_CONFIG_PATH", "/nonexistent/modal.toml")
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    backend, _ = backend_with(mx.AuthError("Token missing. Could not authenticate client."))
    with pytest.raises(ModalCredentialsMissing):
        await backend.check_deployed()


async def test_the_local_backend_names_the_extra_when_torch_is_missing(tmp_path, monkeypatch):
    backend = LocalBackend(fill(tmp_path), timeout=30)

    def no_engine(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(backend, "_load", no_engine)
    monkeypatch.setattr(prerequisites, "missing_packages", lambda: ["torch"])
    with pytest.raises(EngineNotInstalled) as raised:
        await backend.load()
    assert raised.value.detail.endswith(f"run `{FIX}`.")


def test_the_tiny_model_script_without_the_extra_is_one_line(tmp_path):
    done = subprocess.run(
        without_engine("modal_tts.tiny", str(tmp_path / "tiny")), capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "python -m modal_tts.tiny needs the engine extra (torch, echo-tts; missing here: torch, torchaudio, "
        f"safetensors, echo_tts, huggingface_hub): run `{FIX}`."
    )
    assert not (tmp_path / "tiny").exists()


def test_run_stops_before_discord_when_the_modal_app_is_not_deployed(tmp_path, monkeypatch, capsys):
    import bot.client
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    for name, value in {**TOKEN, "DISCORD_TOKEN": "token", "VOICEBOT_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(readiness, "modal_unreachable", lambda: None)

    async def not_deployed(self):
        raise BackendNotDeployed("App 'echo-voicebot' not found")

    async def never(*args, **kwargs):
        pytest.fail("logged in to Discord")

    monkeypatch.setattr(ModalBackend, "check_deployed", not_deployed)
    monkeypatch.setattr(bot.client, "run_bot", never)
    assert main(["run"]) == 1
    assert capsys.readouterr().err == (
        "voicebot: The Modal app isn't deployed. Deploy it with `voicebot deploy`, then try again.\n"
    )


def test_doctor_json_gives_the_modal_findings_fix_apart(tmp_path, monkeypatch, capsys):
    import json

    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "none.toml"))
    assert main(["doctor", "--json", "--backend", "modal", "--data-dir", str(tmp_path / "data")]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert findings[-1] == {
        "status": "fix",
        "line": "No Modal credentials.",
        "fix": ModalCredentialsMissing.fix,
    }

    for name, value in TOKEN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{closed_port()}")
    assert main(["doctor", "--json", "--backend", "modal", "--data-dir", str(tmp_path / "data")]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert findings[-1] == {
        "status": "fix",
        "line": "Can't reach Modal at 127.0.0.1 (Connection refused).",
        "fix": "check the network, then run `voicebot doctor` again.",
    }


def test_a_modal_detail_ending_in_a_full_stop_is_not_doubled():
    import argparse

    from bot.cli.common import terminal_message
    from bot.errors import BackendFailed, BackendUnreachable

    unreachable = BackendUnreachable("Could not connect to the Modal server.")
    line = terminal_message(unreachable, argparse.Namespace())
    assert line == (
        "Can't reach Modal (Could not connect to the Modal server). Check the network, then try again."
    )
    line = terminal_message(BackendFailed("RemoteError: boom."), argparse.Namespace())
    assert "(RemoteError: boom). Try again" in line


def test_run_names_a_missing_discord_token_before_the_speech_set_up(tmp_path, monkeypatch, capsys):
    """A new user follows the README: Discord first. With neither set up, the token is named first."""
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("DISCORD_TOKEN", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "none.toml"))
    assert main(["run", "--data-dir", str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err.startswith("voicebot: DISCORD_TOKEN is not set: ")
    monkeypatch.setenv("DISCORD_TOKEN", "token")
    assert main(["run", "--data-dir", str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err.startswith("voicebot: No Modal credentials: ")
    monkeypatch.setenv("VOICEBOT_BACKEND", "gpu")
    assert main(["run", "--data-dir", str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err.startswith(
        "voicebot: VOICEBOT_BACKEND is 'gpu'; allowed is modal or local"
    )
