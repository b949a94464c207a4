"""Fixtures shared by every test: the tiny random-weight Echo model (built once per run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.media import speech_like


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modal_tts.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-echo"), seed=0)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    from modal_tts.engine import EchoEngine

    return EchoEngine.from_dir(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_latent(tiny_engine) -> np.ndarray:
    return tiny_engine.encode_speaker(speech_like(6.0))
