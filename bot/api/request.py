"""OpenAI's `POST /v1/audio/speech` body, read and checked: pure, no I/O.

What is accepted (OpenAI's fields, then Echo's own as extra top-level fields, which is what the OpenAI
SDK's `extra_body` sends):
- `model`: `echo-tts`, or one of OpenAI's speech model names as an alias of it (`MODEL_ALIASES`), so a
  client hard-wired to `tts-1` works unchanged.
- `input`: 1 to 4,096 characters (OpenAI's limit); chunked later exactly as `/say` chunks.
- `voice`: a voice's name or id in the key's server, or `{"id": …}` (OpenAI's custom-voice form).
- `response_format`: mp3 (the default, as OpenAI's), opus, aac, flac, wav, pcm.
- `speed`: 0.25 to 4.0, default 1.0 (range checked here; what the server does with it is its own choice).
- `stream_format`: `audio` (default) or `sse`.
- `instructions`: OpenAI's style prompt. Echo has none (a voice's manner comes from its recording), so
  anything but an empty string is refused rather than silently ignored.
- `seed` (0 to 2^63-1) and `force_speaker` (bool): Echo's.
Any other field is refused by name, as OpenAI refuses unknown arguments: a typo like `sead` would
otherwise be dropped without a word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bot.api.errors import invalid
from modal_tts.params import MAX_SEED

MODEL = "echo-tts"
# OpenAI's speech models, all answered by Echo: a client configured for any of them needs no change.
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
STREAM_FORMATS = ("audio", "sse")
MAX_INPUT_CHARS = 4096
MIN_SPEED, MAX_SPEED = 0.25, 4.0
FIELDS = (
    "model",
    "input",
    "voice",
    "response_format",
    "speed",
    "stream_format",
    "instructions",
    "seed",
    "force_speaker",
)


@dataclass(frozen=True)
class SpeechAsk:
    """A checked speech request: `voice` is still a name or id, to be found in the key's server."""

    model: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float = 1.0
    stream_format: str = "audio"
    seed: int | None = None
    force_speaker: bool | None = None


def parse_speech_request(body: object) -> SpeechAsk:
    """`body` (the decoded JSON) as a SpeechAsk; raises ApiError (400) naming the first wrong field."""
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.", "invalid_body")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(
            unknown[0],
            f"Unrecognized request argument supplied: {unknown[0]}. Known: {', '.join(FIELDS)}.",
            "unknown_parameter",
        )
    _no_instructions(body.get("instructions"))
    return SpeechAsk(
        model=_model(body.get("model")),
        input=_input(body.get("input")),
        voice=_voice(body.get("voice")),
        response_format=_choice(body, "response_format", FORMATS),
        speed=_speed(body.get("speed", 1.0)),
        stream_format=_choice(body, "stream_format", STREAM_FORMATS),
        seed=_seed(body.get("seed")),
        force_speaker=_flag(body.get("force_speaker"), "force_speaker"),
    )


def _model(value: Any) -> str:
    if value is None:
        raise invalid(
            "model", f"model is required: {MODEL} (or an alias: {', '.join(MODEL_ALIASES)}).", "missing"
        )
    if value != MODEL and value not in MODEL_ALIASES:
        raise invalid(
            "model",
            f"model is {value!r}; this server speaks with {MODEL} (aliases: {', '.join(MODEL_ALIASES)}).",
            "model_not_found",
        )
    return str(value)


def _input(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid("input", "input is required: the text to speak, 1 to 4096 characters.", "missing")
    if len(value) > MAX_INPUT_CHARS:
        raise invalid(
            "input",
            f"input is {len(value)} characters; the most is {MAX_INPUT_CHARS}.",
            "string_above_max_length",
        )
    return value


def _voice(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"id"}:
        value = value["id"]
    if not isinstance(value, str) or not value.strip():
        raise invalid(
            "voice", 'voice is required: a voice\'s name or id in this server, or {"id": "…"}.', "missing"
        )
    return value.strip()


def _choice(body: dict[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = body.get(field, allowed[0])
    if value not in allowed:
        raise invalid(field, f"{field} is {value!r}; allowed: {', '.join(allowed)}.")
    return str(value)


def _speed(value: Any) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not MIN_SPEED <= value <= MAX_SPEED:
        raise invalid("speed", f"speed is {value!r}; allowed is {MIN_SPEED} to {MAX_SPEED}.")
    return float(value)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise invalid("seed", f"seed is {value!r}; allowed is a whole number from 0 to {MAX_SEED}.")
    return value


def _flag(value: Any, field: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise invalid(field, f"{field} is {value!r}; allowed: true or false.")
    return value


def _no_instructions(value: Any) -> None:
    if value is not None and value != "":
        raise invalid(
            "instructions",
            "Echo takes no instructions: a voice's manner comes from its recording. Leave instructions out.",
            "unsupported_parameter",
        )
