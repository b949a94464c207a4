"""Speech backends behind one async protocol: `modal` (default, a Modal GPU) or `local` (in-process).

Importing this package never imports torch; only creating a `local` backend loads the engine.
"""

from __future__ import annotations

from pathlib import Path

from bot.choices import BACKENDS, DEFAULT_BACKEND
from bot.tts.base import EncodingBackend, SpeakerLatent, SpokenChunk, SpokenFile, TTSBackend

__all__ = [
    "BACKENDS",
    "EncodingBackend",
    "SpeakerLatent",
    "SpokenChunk",
    "SpokenFile",
    "TTSBackend",
    "create_backend",
]


def create_backend(
    kind: str = DEFAULT_BACKEND,
    *,
    weights_dir: str | Path | None = None,
    device: str | None = None,
    app_name: str = "echo-voicebot",
    timeout: float = 180.0,
) -> TTSBackend:
    if kind == "modal":
        from bot.tts.modal_backend import ModalBackend

        return ModalBackend(app_name, timeout=timeout)
    if kind == "local":
        if weights_dir is None:
            raise ValueError("The local backend needs a weights directory (--weights DIR).")
        from bot.tts.local_backend import LocalBackend

        return LocalBackend(weights_dir, device=device, timeout=timeout)
    raise ValueError(f"Unknown backend {kind!r}; choose one of: {', '.join(BACKENDS)}.")
