"""Filling a weights directory: right layout, idempotent, pinned, checksummed, resumable, never a half
file, and offline one line fast. No network: a fake hub."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bot.cli import main
from modal_tts import weights
from modal_tts.engine import EchoEngine, weights_present
from modal_tts.weights import LOCK, WEIGHTS, Remote, WeightsFetchError, fill_weights_dir


class FakeHub:
    """Serves the tiny model's files as if they were the two Hugging Face repos."""

    def __init__(self, source: Path, *, commit: str = "c0ffee" * 7, offline: bool = False) -> None:
        self.by_repo = {(repo, name): source / dest for repo, name, dest in WEIGHTS}
        self.commit, self.offline = commit, offline
        self.calls: list[tuple[str, str, str]] = []
        self.corrupt: set[str] = set()  # repos whose download differs from the advertised sha256
        self.fail_on: str | None = None  # a repo whose download drops the connection

    def reachable(self) -> None:
        if self.offline:
            raise WeightsFetchError("Can't reach huggingface.co (Name or service not known).")

    def resolve(self, repo: str, filename: str, revision: str) -> Remote:
        data = self.by_repo[(repo, filename)].read_bytes()
        commit = revision if len(revision) == 42 else self.commit
        return Remote(commit, hashlib.sha256(data).hexdigest(), len(data))

    def download(self, repo: str, filename: str, revision: str, directory: Path) -> Path:
        self.calls.append((repo, filename, revision))
        if repo == self.fail_on:
            raise WeightsFetchError(f"Can't download {repo}/{filename}: the network went away.")
        out = directory / filename
        data = self.by_repo[(repo, filename)].read_bytes()
        out.write_bytes(data + b"x" if repo in self.corrupt else data)
        return out


def test_fills_the_layout_once_pins_the_commit_and_loads(tmp_path, tiny_model_dir):
    hub = FakeHub(tiny_model_dir)
    root = tmp_path / "weights"
    root.mkdir()
    (root / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    lines: list[str] = []
    fetched = fill_weights_dir(root, hub, progress=lines.append)
    assert fetched == [dest for _, _, dest in WEIGHTS]
    assert [(repo, name) for repo, name, _ in hub.calls] == [
        ("jordand/echo-tts-base", "pytorch_model.safetensors"),
        ("jordand/echo-tts-base", "pca_state.safetensors"),
        ("jordand/fish-s1-dac-min", "pytorch_model.safetensors"),
    ]
    assert {revision for _, _, revision in hub.calls} == {hub.commit}
    assert lines[0].startswith(
        "Fetching echo/pytorch_model.safetensors from jordand/echo-tts-base@c0ffeec0ffee"
    )
    lock = json.loads((root / LOCK).read_text())
    assert lock["dac/pytorch_model.safetensors"]["commit"] == hub.commit
    assert weights_present(root) and not (root / ".downloading").exists()
    assert EchoEngine.from_dir(root).revision == EchoEngine.from_dir(tiny_model_dir).revision

    assert fill_weights_dir(root, FakeHub(tiny_model_dir, offline=True)) == []  # nothing to do: no network
    assert len(hub.calls) == 3


def test_an_interrupted_fetch_resumes_at_the_locked_commit(tmp_path, tiny_model_dir):
    hub = FakeHub(tiny_model_dir)
    hub.fail_on = "jordand/fish-s1-dac-min"
    root = tmp_path / "weights"
    with pytest.raises(WeightsFetchError):
        fill_weights_dir(root, hub)
    assert not (root / "dac/pytorch_model.safetensors").exists()
    assert (root / "echo/pytorch_model.safetensors").is_file()

    later = FakeHub(tiny_model_dir, commit="beef" * 10 + "00")  # "main" moved on meanwhile
    assert fill_weights_dir(root, later) == ["dac/pytorch_model.safetensors"]
    assert later.calls == [("jordand/fish-s1-dac-min", "pytorch_model.safetensors", later.commit)]


def test_a_download_that_fails_its_checksum_is_removed(tmp_path, tiny_model_dir):
    hub = FakeHub(tiny_model_dir)
    hub.corrupt.add("jordand/echo-tts-base")
    root = tmp_path / "weights"
    with pytest.raises(WeightsFetchError, match="sha256"):
        fill_weights_dir(root, hub)
    assert not (root / "echo/pytorch_model.safetensors").exists()
    assert not list((root / ".downloading").rglob("*.safetensors"))


def test_weights_fetch_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert main(["weights", "fetch", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert err == (
        "voicebot: HF_HUB_OFFLINE is set, so nothing can be downloaded: unset it, or copy the weights "
        "in by hand.\n"
    )


def test_weights_fetch_with_no_route_to_the_hub_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # a closed port
    assert main(["weights", "fetch", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("voicebot: Can't reach 127.0.0.1 (") and err.count("\n") == 1


def test_weights_fetch_command_uses_the_hub_and_says_what_it_fetched(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    monkeypatch.setattr(weights, "HuggingFaceHub", lambda: FakeHub(tiny_model_dir))
    monkeypatch.setattr("bot.cli.common.stderr_is_terminal", lambda: True)  # a terminal: progress lines
    assert main(["weights", "fetch", str(tmp_path / "w")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Fetched echo/pytorch_model.safetensors, echo/pca_state.safetensors, dac/")
    assert "voicebot: Fetching dac/pytorch_model.safetensors from jordand/fish-s1-dac-min@" in err
    assert main(["weights", "fetch", str(tmp_path / "w")]) == 0
    assert "already holds every weights file" in capsys.readouterr().out
