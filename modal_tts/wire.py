"""The bytes that cross between the bot and the GPU: numpy only, so both sides share one definition.

Version 1 (unversioned; what the Modal app and the bot backends speak until they switch over):
- Reference PCM (bot → GPU): float32 little-endian, mono, 44,100 Hz, samples in [-1, 1].
- Speaker latent (both ways): float16 little-endian, C order, shape [T, 80], finite, sent as
  `{"latent": bytes, "shape": [T, 80], "revision": str}`.
- Synthesised chunk (GPU → bot): int16 little-endian PCM, mono, 44,100 Hz, sent as
  `{"index": i, "pcm": bytes, "sample_rate": 44100, "gpu_seconds": float}`. 16-bit halves what a
  home server downloads per 30 s chunk (2.6 MB instead of 5.3 MB) and is more than the Opus/MP3 the
  bot sends on needs.

Version 2 (`WIRE_VERSION`): the engine replies with audio already levelled and encoded, about a ninth of
the bytes, so a bot process mostly forwards them. Every reply is a dict with `"v": 2` and a `"kind"`:
- `"opus"`: a block of live audio, `{"index": chunk, "block": i, "packets": [bytes, ...], "samples": n,
  "gpu_seconds": float, "last": bool}`; each packet is one raw 20 ms 48 kHz stereo Opus frame (what
  discord.py plays as is), `samples` the 44.1 kHz PCM samples the block covers, `last` ends the chunk.
- `"file"`: a finished file, `{"format": "ogg" | "mp3" | ..., "data": bytes, "seconds": float,
  "gpu_seconds": float}`, tags included.
- `"pcm"`: a chunk as int16 PCM, as in version 1 (`{"index", "pcm", "sample_rate", "gpu_seconds"}`),
  only when asked for.
The bot sends `WIRE_VERSION` with each request and the engine checks it (`check_request_version`); a
reply with another or no `"v"` is refused too. Either way a bot and a deployed Modal app of different
versions fail with `WireVersionMismatch`, which says to redeploy, instead of misreading each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modal_tts.params import LATENT_SIZE, MAX_SPEAKER_LATENT_LENGTH, SAMPLE_RATE, SPEAKER_PATCH_SIZE

MAX_REFERENCE_SAMPLES = MAX_SPEAKER_LATENT_LENGTH * 2048


class WireError(ValueError):
    """Bytes that do not follow the format above."""


def pcm_to_bytes(pcm: np.ndarray) -> bytes:
    return np.ascontiguousarray(pcm, dtype="<f4").tobytes()


def pcm_from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise WireError(f"Reference PCM is {len(data)} bytes, not a whole number of float32s.")
    pcm = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if pcm.size == 0:
        raise WireError("Reference PCM is empty.")
    if not np.isfinite(pcm).all():
        raise WireError("Reference PCM contains NaN or infinite samples.")
    return pcm


def latent_to_wire(latent: np.ndarray, revision: str) -> dict[str, Any]:
    latent = np.ascontiguousarray(latent, dtype="<f2")
    return {"latent": latent.tobytes(), "shape": list(latent.shape), "revision": revision}


def latent_from_wire(message: dict[str, Any]) -> tuple[np.ndarray, str]:
    try:
        data, shape, revision = message["latent"], message["shape"], message["revision"]
        rows, cols = (int(n) for n in shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"Malformed latent message: {exc}") from exc
    if cols != LATENT_SIZE or not 0 < rows <= MAX_SPEAKER_LATENT_LENGTH or rows % SPEAKER_PATCH_SIZE:
        raise WireError(
            f"Latent shape {rows}x{cols} is invalid: expected T x {LATENT_SIZE} with 0 < T <= "
            f"{MAX_SPEAKER_LATENT_LENGTH} and T a multiple of {SPEAKER_PATCH_SIZE}."
        )
    if len(data) != rows * cols * 2:
        raise WireError(f"Latent is {len(data)} bytes; shape {rows}x{cols} needs {rows * cols * 2}.")
    latent = np.frombuffer(data, dtype="<f2").reshape(rows, cols).astype(np.float16)
    if not np.isfinite(latent).all():
        raise WireError("Latent contains NaN or infinite values.")
    return latent, str(revision)


def chunk_to_wire(index: int, audio: np.ndarray, sample_rate: int, gpu_seconds: float) -> dict:
    pcm16 = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    return {
        "index": index,
        "pcm": pcm16.tobytes(),
        "sample_rate": sample_rate,
        "gpu_seconds": gpu_seconds,
    }


def chunk_from_wire(message: dict[str, Any]) -> tuple[int, np.ndarray, float]:
    try:
        index, data = int(message["index"]), message["pcm"]
        gpu_seconds = float(message.get("gpu_seconds", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"Malformed chunk message: {exc}") from exc
    if len(data) % 2:
        raise WireError(f"Chunk PCM is {len(data)} bytes, not a whole number of int16s.")
    audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0
    return index, audio, gpu_seconds


# --- version 2 -------------------------------------------------------------------------------------

WIRE_VERSION = 2  # bump on any change the other side would misread: old peers then say "redeploy"
KINDS = ("opus", "file", "pcm", "progress")
_KIND_NAMES = {"opus": "Opus", "file": "File", "pcm": "PCM", "progress": "Progress"}


FILE_FORMATS = ("ogg", "mp3", "wav", "flac")  # modal_tts.output.FORMATS, named here to stay numpy-only


class WireVersionMismatch(WireError):
    """The bot and the deployed Modal app speak different wire versions: one of them was updated alone."""

    def __init__(self, app_version: object, bot_version: object) -> None:
        super().__init__(
            "The Modal app and this bot are different versions (the app speaks wire format "
            f"{_version_name(app_version)}, the bot {_version_name(bot_version)}). Redeploy the app "
            "from this bot's install with `voicebot deploy`."
        )
        self.app_version, self.bot_version = app_version, bot_version

    def __reduce__(self) -> tuple[type, tuple[object, object]]:
        # Modal re-raises the container's exception in the bot by pickle.
        return type(self), (self.app_version, self.bot_version)


def _version_name(version: object) -> str:
    if version is None:
        return "1 (no version)"
    return str(version) if type(version) is int else repr(version)


@dataclass(frozen=True)
class OpusBlock:
    """Live audio: whole 20 ms Opus packets for part of chunk `index`, in order."""

    index: int
    block: int
    packets: tuple[bytes, ...]
    samples: int  # 44.1 kHz PCM samples this block covers
    gpu_seconds: float
    last: bool  # the chunk's last block: its packets are flushed
    peak: float = 0.0  # the block's loudest sample: the bot refuses a silent chunk as it does PCM


@dataclass(frozen=True)
class EncodedFile:
    """A finished, tagged file of the whole speech; a voice message's also has Discord's waveform."""

    format: str
    data: bytes
    seconds: float
    gpu_seconds: float
    waveform: str | None = None


@dataclass(frozen=True)
class Progress:
    """Chunk `done` of `total` is made (a file's speech, before the file): its loudest sample, so that the
    bot can refuse a silent chunk as it does PCM it receives."""

    done: int
    total: int
    peak: float


@dataclass(frozen=True, eq=False)
class PcmChunk:
    """Chunk `index`'s audio as float32 mono at 44.1 kHz (sent as int16): the whole chunk, or its next
    block's new samples (`last` on the chunk's final piece)."""

    index: int
    audio: np.ndarray
    gpu_seconds: float
    block: int = 0
    last: bool = True


OUTPUTS = ("pcm", "opus", "file")  # what a speak request may ask the engine to return


@dataclass(frozen=True)
class FileSpec:
    """The file a speak request with output "file" wants: format, tags, the upload limit to fit (None:
    any size) and whether it is a Discord voice message (Ogg/Opus with a waveform)."""

    format: str
    title: str
    voice: str
    limit_bytes: int | None = None
    voice_message: bool = False


@dataclass(frozen=True, eq=False)
class SpeakRequest:
    """What the bot asks the engine to say (version 2): texts in a voice, settings, seed, and the form
    the audio comes back in."""

    texts: list[str]
    latent: np.ndarray
    revision: str
    params: dict[str, Any]
    seed: int
    output: str = "pcm"
    file: FileSpec | None = None


def speak_request_to_wire(request: SpeakRequest) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "texts": list(request.texts),
        "latent": latent_to_wire(request.latent, request.revision),
        "params": dict(request.params),
        "seed": int(request.seed),
        "output": request.output,
        "file": None if request.file is None else asdict(request.file),
    }


def speak_request_from_wire(message: object) -> SpeakRequest:
    """Engine side: the version first (another release says "redeploy"), then every field."""
    if not isinstance(message, Mapping):
        raise WireError(f"Speak request is {_what(message)}; expected a dict.")
    check_request_version(message.get("v"))
    texts, params, seed, output = (message.get(k) for k in ("texts", "params", "seed", "output"))
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise WireError(f"Speak request: 'texts' is {_what(texts)}; expected a list of strings.")
    if not isinstance(params, Mapping):
        raise WireError(f"Speak request: 'params' is {_what(params)}; expected a dict of settings.")
    if type(seed) is not int:
        raise WireError(f"Speak request: 'seed' is {_what(seed)}; expected an int.")
    if output not in OUTPUTS:
        raise WireError(f"Speak request: 'output' is {_what(output)}; expected one of {', '.join(OUTPUTS)}.")
    latent, revision = latent_from_wire(message.get("latent"))  # type: ignore[arg-type]
    spec = message.get("file")
    if output == "file":
        try:
            spec = FileSpec(**spec)  # type: ignore[arg-type]
        except TypeError as exc:
            raise WireError(f"Speak request: 'file' is {_what(spec)}; expected a file spec ({exc}).") from exc
        if spec.format not in FILE_FORMATS:
            raise WireError(
                f"Speak request: format {spec.format!r}; expected one of {', '.join(FILE_FORMATS)}."
            )
    else:
        spec = None
    return SpeakRequest(texts, latent, revision, dict(params), seed, output, spec)


def check_request_version(version: object) -> None:
    """Engine side, first thing in every request: refuse a bot that speaks another wire version."""
    if type(version) is not int or version != WIRE_VERSION:
        raise WireVersionMismatch(app_version=WIRE_VERSION, bot_version=version)


def opus_block_to_wire(
    index: int,
    block: int,
    packets: Sequence[bytes],
    samples: int,
    gpu_seconds: float,
    *,
    last: bool,
    peak: float = 0.0,
) -> dict[str, Any]:
    return {
        "peak": float(peak),
        "v": WIRE_VERSION,
        "kind": "opus",
        "index": int(index),
        "block": int(block),
        "packets": [bytes(p) for p in packets],
        "samples": int(samples),
        "gpu_seconds": float(gpu_seconds),
        "last": bool(last),
    }


def file_to_wire(
    fmt: str, data: bytes, seconds: float, gpu_seconds: float, waveform: str | None = None
) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "kind": "file",
        "format": str(fmt),
        "data": bytes(data),
        "seconds": float(seconds),
        "gpu_seconds": float(gpu_seconds),
        "waveform": waveform,
    }


def progress_to_wire(done: int, total: int, peak: float) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "kind": "progress",
        "done": int(done),
        "total": int(total),
        "peak": float(peak),
    }


def progress_from_wire(message: object) -> Progress:
    fields = _fields(message, "progress")
    return Progress(fields.count("done"), fields.count("total"), fields.seconds("peak"))


def pcm_chunk_to_wire(
    index: int, audio: np.ndarray, gpu_seconds: float, *, block: int = 0, last: bool = True
) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "kind": "pcm",
        **chunk_to_wire(int(index), audio, SAMPLE_RATE, float(gpu_seconds)),
        "block": int(block),
        "last": bool(last),
    }


def opus_block_from_wire(message: object) -> OpusBlock:
    fields = _fields(message, "opus")
    packets = fields.get("packets")
    if not isinstance(packets, list | tuple):
        raise WireError(f"Opus message: 'packets' is {_what(packets)}; expected a list of bytes.")
    for i, packet in enumerate(packets):
        if not isinstance(packet, bytes | bytearray) or not packet:
            raise WireError(f"Opus message: packet {i} is {_what(packet)}; expected non-empty bytes.")
    return OpusBlock(
        index=fields.count("index"),
        block=fields.count("block"),
        packets=tuple(bytes(p) for p in packets),
        samples=fields.count("samples"),
        gpu_seconds=fields.seconds("gpu_seconds"),
        last=fields.flag("last"),
        peak=fields.seconds("peak"),
    )


def file_from_wire(message: object) -> EncodedFile:
    fields = _fields(message, "file")
    fmt, data = fields.get("format"), fields.get("data")
    if not isinstance(fmt, str) or not fmt:
        raise WireError(f"File message: 'format' is {_what(fmt)}; expected a format name.")
    if not isinstance(data, bytes | bytearray) or not data:
        raise WireError(f"File message: 'data' is {_what(data)}; expected the file's bytes.")
    waveform = fields.get("waveform")
    if waveform is not None and not isinstance(waveform, str):
        raise WireError(f"File message: 'waveform' is {_what(waveform)}; expected base64 text or None.")
    return EncodedFile(
        format=fmt,
        data=bytes(data),
        seconds=fields.seconds("seconds"),
        gpu_seconds=fields.seconds("gpu_seconds"),
        waveform=waveform,
    )


def pcm_chunk_from_wire(message: object) -> PcmChunk:
    fields = _fields(message, "pcm")
    data, rate = fields.get("pcm"), fields.get("sample_rate")
    if not isinstance(data, bytes | bytearray) or len(data) % 2:
        raise WireError(f"PCM message: 'pcm' is {_what(data)}; expected int16 bytes (an even length).")
    if rate != SAMPLE_RATE:
        raise WireError(f"PCM message: 'sample_rate' is {_what(rate)}; expected {SAMPLE_RATE}.")
    audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0
    return PcmChunk(
        index=fields.count("index"),
        audio=audio,
        gpu_seconds=fields.seconds("gpu_seconds"),
        block=fields.count("block"),
        last=fields.flag("last"),
    )


def reply_from_wire(message: object) -> OpusBlock | EncodedFile | PcmChunk | Progress:
    """Any version-2 reply, by its kind: the bot's one entry point for what the engine streams back."""
    kind = _checked(message).get("kind")
    if kind == "progress":
        return progress_from_wire(message)
    if kind == "opus":
        return opus_block_from_wire(message)
    if kind == "file":
        return file_from_wire(message)
    if kind == "pcm":
        return pcm_chunk_from_wire(message)
    raise WireError(f"Reply kind is {kind!r}; expected one of {', '.join(KINDS)}.")


def _what(value: object) -> str:
    """A wrong value, named without dumping a megabyte of bytes into the message."""
    if value is None:
        return "missing"
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _checked(message: object) -> Mapping[str, Any]:
    """The message as a mapping of the right version (checked before anything else: a message of
    another version is not malformed, it is from another release)."""
    if not isinstance(message, Mapping):
        raise WireError(f"Reply is {_what(message)}; expected a dict.")
    version = message.get("v")
    if type(version) is not int or version != WIRE_VERSION:
        raise WireVersionMismatch(app_version=version, bot_version=WIRE_VERSION)
    return message


class _Fields:
    """Typed reads of one message's fields; each failure names the kind, the field and what it held."""

    def __init__(self, message: Mapping[str, Any], kind: str) -> None:
        self.message, self.kind = message, _KIND_NAMES[kind]

    def get(self, key: str) -> Any:
        return self.message.get(key)

    def count(self, key: str) -> int:
        value: Any = self.message.get(key)
        if type(value) is not int or value < 0:
            raise WireError(f"{self.kind} message: {key!r} is {_what(value)}; expected an int >= 0.")
        return value

    def seconds(self, key: str) -> float:
        value: Any = self.message.get(key)
        if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            raise WireError(f"{self.kind} message: {key!r} is {_what(value)}; expected seconds >= 0.")
        return float(value)

    def flag(self, key: str) -> bool:
        value: Any = self.message.get(key)
        if type(value) is not bool:
            raise WireError(f"{self.kind} message: {key!r} is {_what(value)}; expected True or False.")
        return value


def _fields(message: object, kind: str) -> _Fields:
    checked = _checked(message)
    if checked.get("kind") != kind:
        raise WireError(f"Reply kind is {checked.get('kind')!r}; expected {kind!r}.")
    return _Fields(checked, kind)
