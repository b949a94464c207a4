"""Filling a weights directory: right layout, idempotent, never a half file. No network: fake hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from modal_tts.engine import EchoEngine, weights_present
from modal_tts.weights import WEIGHTS, fill_weights_dir


def fake_hub(source: Path, calls: list[tuple[str, str]]):
    """Serves the tiny model's files as if they were the two Hugging Face repos."""
    by_repo = {(repo, name): dest for repo, name, dest in WEIGHTS}

    def download(repo: str, filename: str, directory: Path) -> Path:
        calls.append((repo, filename))
        out = directory / filename
        out.write_bytes((source / by_repo[(repo, filename)]).read_bytes())
        return out

    return download


def test_fills_the_layout_once_and_loads(tmp_path, tiny_model_dir):
    calls: list[tuple[str, str]] = []
    root = tmp_path / "weights"
    (root).mkdir()
    (root / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    fetched = fill_weights_dir(root, fake_hub(tiny_model_dir, calls))
    assert fetched == [dest for _, _, dest in WEIGHTS]
    assert calls == [
        ("jordand/echo-tts-base", "pytorch_model.safetensors"),
        ("jordand/echo-tts-base", "pca_state.safetensors"),
        ("jordand/fish-s1-dac-min", "pytorch_model.safetensors"),
    ]
    assert weights_present(root) and not (root / ".downloading").exists()
    assert EchoEngine.from_dir(root).revision == EchoEngine.from_dir(tiny_model_dir).revision

    assert fill_weights_dir(root, fake_hub(tiny_model_dir, calls)) == []
    assert len(calls) == 3  # nothing fetched the second time


def test_an_interrupted_download_leaves_no_file_in_place(tmp_path, tiny_model_dir):
    calls: list[tuple[str, str]] = []
    good = fake_hub(tiny_model_dir, calls)

    def flaky(repo: str, filename: str, directory: Path) -> Path:
        if repo.endswith("dac-min"):
            raise ConnectionError("network went away")
        return good(repo, filename, directory)

    root = tmp_path / "weights"
    with pytest.raises(ConnectionError):
        fill_weights_dir(root, flaky)
    assert not (root / "dac/pytorch_model.safetensors").exists()
    assert fill_weights_dir(root, good) == ["dac/pytorch_model.safetensors"]
