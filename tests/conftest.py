"""Fixtures shared by every test: the tiny random-weight Echo model (built once per run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

HAS_ENGINE = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("echo_tts")


def speech_like(seconds: float, *, seed: int = 0, sample_rate: int = 44_100) -> np.ndarray:
    """A voiced-sounding test signal: harmonics of a wandering pitch under a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    signal = 0.25 * voiced * envelope + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


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
