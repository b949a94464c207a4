"""Sampler settings for one synthesis request, validated in one place.

Torch-free on purpose: the bot validates a request with the same rules before it spends a GPU call, and
the GPU side validates again because it can't trust its caller.

Defaults (the bot's, not Echo's README): Echo recommends 40 Euler steps with text CFG 3.0 and speaker CFG
8.0 between t=0.5 and t=1.0 ("Independent-High-Speaker-CFG"). We keep those guidance scales, because a
cloned voice that drifts is the main way this product fails, and keep 40 steps, because fewer steps
audibly blur consonants on the real model. We add Echo's "Flat" preset's truncation 0.8 and temporal score
rescale (k=1.2, sigma=3.0), which the model author found to reduce the long pauses and tail noise Echo is
known for. "Force speaker" (speaker_kv_scale, typically 1.5) is off by default and exposed per request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

SAMPLE_RATE = 44_100
LATENT_SIZE = 80
SAMPLES_PER_LATENT = 2048
MAX_SEQUENCE_LENGTH = 640  # latents per generation: 640 * 2048 / 44100 ≈ 29.7 s
MAX_SPEAKER_LATENT_LENGTH = 6400  # ≈ 297 s of reference audio
SPEAKER_PATCH_SIZE = 4
MAX_TEXT_BYTES = 767  # Echo reads 768 byte tokens and the first is its BOS: 767 bytes of text incl. "[S1] "
MAX_SEED = 2**63 - 1
BLOCK_PLANS = ("whole", "low-latency", "even")  # their blocks: `modal_tts.plans`


class InvalidParams(ValueError):
    """A setting is outside the range the sampler supports; the message names it and the range."""


class InvalidLatent(InvalidParams):
    """A speaker latent the sampler can't use (wrong shape, NaN or infinite values): the voice's stored
    data is damaged, and the voice needs encoding again from its recording."""


# name -> (min, max, allow_none)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "steps": (1, 200, False),
    "cfg_scale_text": (0.0, 20.0, False),
    "cfg_scale_speaker": (0.0, 20.0, False),
    "cfg_min_t": (0.0, 1.0, False),
    "cfg_max_t": (0.0, 1.0, False),
    "truncation_factor": (0.1, 1.5, True),
    "rescale_k": (0.5, 2.0, True),
    "rescale_sigma": (0.1, 10.0, True),
    "speaker_kv_scale": (0.5, 3.0, True),
    "speaker_kv_max_layers": (1, 64, True),
    "speaker_kv_min_t": (0.0, 1.0, True),
    "sequence_length": (SPEAKER_PATCH_SIZE, MAX_SEQUENCE_LENGTH, True),
    "silence_guard_s": (0.2, 10.0, True),
}
_NAMES = {"block_plan"}  # settings that are names, checked by their own module
_INTEGERS = {"steps", "speaker_kv_max_layers", "sequence_length"}


@dataclass(frozen=True)
class SynthesisParams:
    steps: int = 40
    cfg_scale_text: float = 3.0
    cfg_scale_speaker: float = 8.0
    cfg_min_t: float = 0.5
    cfg_max_t: float = 1.0
    truncation_factor: float | None = 0.8
    rescale_k: float | None = 1.2
    rescale_sigma: float | None = 3.0
    # "Force speaker": scales the speaker attention keys/values while t >= speaker_kv_min_t.
    speaker_kv_scale: float | None = None
    speaker_kv_max_layers: int | None = None
    speaker_kv_min_t: float | None = 0.9
    # Latents sampled per chunk; None: sized to each chunk's text (`modal_tts.windows`).
    sequence_length: int | None = None
    # How a chunk is sampled: in one block, or in blocks heard as each is ready (`modal_tts.plans`).
    block_plan: str = "whole"
    # Echo sometimes leaves a long silence mid-sentence: a block with one this long (seconds) inside
    # speech is sampled once more with new noise. None: off.
    silence_guard_s: float | None = 1.0

    def __post_init__(self) -> None:
        if self.block_plan not in BLOCK_PLANS:
            raise InvalidParams(
                f"block_plan is {self.block_plan!r}; allowed is one of {', '.join(BLOCK_PLANS)}."
            )
        for f in fields(self):
            if f.name in _NAMES:
                continue
            value = getattr(self, f.name)
            low, high, allow_none = _RANGES[f.name]
            if value is None:
                if not allow_none:
                    raise InvalidParams(f"{f.name} is required ({low:g} to {high:g}).")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParams(f"{f.name} must be a number, not {type(value).__name__}.")
            if f.name in _INTEGERS and int(value) != value:
                raise InvalidParams(f"{f.name} must be a whole number, not {value!r}.")
            if not low <= value <= high or value != value:  # value != value catches NaN
                raise InvalidParams(f"{f.name} is {value!r}; allowed is {low:g} to {high:g}.")
        if self.cfg_min_t > self.cfg_max_t:
            raise InvalidParams(
                f"cfg_min_t ({self.cfg_min_t:g}) must not be above cfg_max_t ({self.cfg_max_t:g})."
            )
        if (self.rescale_k is None) != (self.rescale_sigma is None):
            raise InvalidParams("rescale_k and rescale_sigma must be set together or both left off.")
        if self.speaker_kv_scale is not None and self.speaker_kv_min_t is None:
            raise InvalidParams("speaker_kv_min_t is required when speaker_kv_scale is set.")

    def sampler_settings(self) -> SynthesisParams:
        """These settings less those that don't change a sampler call: rows with equal sampler settings
        can share one (a block's size and steps come from the plan, not from here)."""
        return replace(self, block_plan="whole", silence_guard_s=None)

    def to_dict(self) -> dict[str, Any]:
        """The settings as the wire carries them. Block plan and silence guard are left out at their
        defaults: a Modal app deployed before they existed refuses unknown settings, and until wire format
        2's version check is in use that would be a baffling "invalid request" rather than old behaviour."""
        data = asdict(self)
        for name in _SINCE_BLOCKS:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthesisParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidParams(f"Unknown setting(s): {', '.join(unknown)}.")
        return cls(**data)


_DEFAULTS = {f.name: f.default for f in fields(SynthesisParams)}
_SINCE_BLOCKS = ("block_plan", "silence_guard_s")


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidParams(f"seed is {seed!r}; allowed is 0 to {MAX_SEED}.")
    return seed


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk `index` of a request: each chunk gets its own noise, reproducibly."""
    return (seed + index) % (MAX_SEED + 1)


def check_texts(texts: list[str]) -> list[str]:
    if not isinstance(texts, list | tuple) or not texts:
        raise InvalidParams("At least one text is required.")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidParams(f"Text {i + 1} is empty.")
        size = len(text.encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            raise InvalidParams(
                f"Text {i + 1} is {size} bytes of UTF-8; Echo takes at most {MAX_TEXT_BYTES}."
            )
    return list(texts)


def check_latent(latent: np.ndarray) -> np.ndarray:
    """A speaker latent as the sampler needs it: a finite [T, 80] array, T a multiple of the patch size."""
    if (
        not isinstance(latent, np.ndarray)
        or latent.ndim != 2
        or latent.shape[1] != LATENT_SIZE
        or latent.dtype.kind not in "fiu"
    ):
        what = f"{latent.dtype} {latent.shape}" if isinstance(latent, np.ndarray) else type(latent).__name__
        raise InvalidLatent(f"A speaker latent must be a numeric [T, {LATENT_SIZE}] array, not {what}.")
    rows = latent.shape[0]
    if not 0 < rows <= MAX_SPEAKER_LATENT_LENGTH or rows % SPEAKER_PATCH_SIZE:
        raise InvalidLatent(
            f"A speaker latent has {rows} frames; allowed is {SPEAKER_PATCH_SIZE} to "
            f"{MAX_SPEAKER_LATENT_LENGTH} in multiples of {SPEAKER_PATCH_SIZE}."
        )
    if not np.isfinite(latent).all():
        raise InvalidLatent("A speaker latent contains NaN or infinite values.")
    return latent
