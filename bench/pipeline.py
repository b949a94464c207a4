"""Bot-side overhead of one `/say`: `python -m bench.pipeline [--runs N]` prints JSON.

The speech backend is replaced by a replay of pre-computed chunk audio (zero model time), so what is
timed is exactly the bot's own work for a reply of about 20 s of speech: text preparation, loading the
voice, stitching and levelling the chunks, recording usage, and encoding + tagging the Ogg/Opus file.
Goal: ≤ 100 ms median on a 2-core machine.

`modal_path` compares the Modal backend's two ways, each a replay of what the app sends for this reply,
pickled in advance and unpickled by the bot as Modal's client does: int16 PCM chunks that the bot stitches
and encodes itself (how every reply came before wire format 2), against the finished file the engine side
makes now (`modal_tts.replies`). Reported: the bot's CPU time per reply (process time, median), the ratio
(goal ≤ 0.2), and the bytes on the wire (goal ≤ 200 KB per 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from bot import speech
from bot.store import VoiceStore
from bot.tts import SpeakerLatent, SpokenChunk
from bot.tts.modal_backend import ModalBackend
from modal_tts import wire
from modal_tts.params import SAMPLE_RATE, SynthesisParams
from modal_tts.replies import replies
from modal_tts.scheduler import ChunkAudio

MESSAGE = (
    "**Good evening, everyone!** Tonight's session starts at <t:1764000000:t> in <#123>, so grab "
    "a drink and settle in. We'll recap last week's heist first; then @here gets to vote on where "
    "the party goes next. Notes are at https://example.org/campaign/notes, and yes, the dragon is "
    "still angry about the gold 🐉."
)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Voiced-sounding audio with pauses, standing in for what the model returns."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(130 + 20 * np.sin(2 * np.pi * 0.5 * t)) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None)
    return (0.3 * voiced * syllables + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


class ReplayBackend:
    """A TTSBackend that answers instantly with audio made in advance: one array per chunk."""

    name = "replay"

    def __init__(self, seconds_per_chunk: Sequence[float]) -> None:
        self.audio = [speech_like(s, i) for i, s in enumerate(seconds_per_chunk)]

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        return SpeakerLatent(np.zeros((8, 80), np.float16), "replay")

    async def synthesize(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        for i, _ in enumerate(texts):
            yield SpokenChunk(i, self.audio[i % len(self.audio)], 0.0)

    async def info(self) -> dict[str, Any]:
        return {"revision": "replay"}

    async def close(self) -> None:
        return None


async def one_say(store: VoiceStore, backend: ReplayBackend) -> dict[str, float]:
    marks = {"start": time.perf_counter()}
    request = speech.plan(
        store, guild_id=1, user_id=2, voice_name="Narrator", words=MESSAGE, max_chars=2000, seed=1
    )
    marks["text"] = time.perf_counter()
    result = await speech.speak(store, backend, request)
    marks["stitch"] = time.perf_counter()
    data = speech.render(result, "ogg", limit_bytes=10 * 1024 * 1024)
    marks["encode"] = time.perf_counter()
    return {
        "text_ms": (marks["text"] - marks["start"]) * 1000,
        "stitch_ms": (marks["stitch"] - marks["text"]) * 1000,
        "encode_ms": (marks["encode"] - marks["stitch"]) * 1000,
        "total_ms": (marks["encode"] - marks["start"]) * 1000,
        "audio_s": result.audio_seconds,
        "bytes": len(data),
        "chunks": len(request.chunks),
    }


class ModalReplay:
    """Stands in for the deployed class: `speak.remote_gen.aio(request)` replays the messages the app
    would send for it, pickled in advance (the bot pays for unpickling, as with Modal's client)."""

    def __init__(self, pcm: list[bytes], file: list[bytes]) -> None:
        self.replies = {"pcm": pcm, "file": file}
        self.speak = self
        self.remote_gen = self

    async def aio(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        for message in self.replies[request["output"]]:
            yield pickle.loads(message)


def modal_replies(chunks: list[np.ndarray], title: str, limit: int) -> tuple[list[bytes], list[bytes]]:
    """What the app sends for these chunks: int16 PCM per chunk, or progress then the finished file."""
    pieces = [ChunkAudio(i, audio, 0.0, 640) for i, audio in enumerate(chunks)]
    spec = wire.FileSpec("ogg", title, "Narrator", limit)
    texts = ["[S1] x"] * len(chunks)
    asked = {
        kind: wire.SpeakRequest(texts, np.zeros((8, 80)), "r", {}, 1, kind, spec) for kind in ("pcm", "file")
    }
    return (
        [pickle.dumps(m) for m in replies(pieces, asked["pcm"])],
        [pickle.dumps(m) for m in replies(pieces, asked["file"])],
    )


async def modal_path(store: VoiceStore, chunks: list[np.ndarray], runs: int) -> dict[str, Any]:
    """The bot's CPU per reply on the Modal path: PCM it encodes itself, against the engine's file."""
    limit = 10 * 1024 * 1024
    request = speech.plan(
        store, guild_id=1, user_id=2, voice_name="Narrator", words=MESSAGE, max_chars=2000, seed=1
    )
    pcm, file = modal_replies(chunks, speech.tags_of(request).title, limit)
    backend = ModalBackend(lookup=lambda: ModalReplay(pcm, file))

    async def bot_encodes() -> int:
        asked = speech.plan(
            store, guild_id=1, user_id=2, voice_name="Narrator", words=MESSAGE, max_chars=2000
        )
        said = await speech.speak(store, backend, asked, record_usage=False)
        return len(speech.render(said, "ogg", limit_bytes=limit))

    async def engine_encodes() -> int:
        asked = speech.plan(
            store, guild_id=1, user_id=2, voice_name="Narrator", words=MESSAGE, max_chars=2000
        )
        made = await speech.speak_to_file(
            store, backend, asked, file_format="ogg", limit_bytes=limit, voice_message=False
        )
        assert isinstance(made.file, bytes)
        return len(made.file)

    cpu: dict[str, list[float]] = {"bot_encodes": [], "engine_encodes": []}
    for _ in range(runs + 1):  # the first of each is a warm-up
        for name, fn in (("bot_encodes", bot_encodes), ("engine_encodes", engine_encodes)):
            started = time.process_time()
            await fn()
            cpu[name].append((time.process_time() - started) * 1000)
    bot_ms, engine_ms = (statistics.median(cpu[k][1:]) for k in ("bot_encodes", "engine_encodes"))
    return {
        "bot_cpu_ms_bot_encodes": round(bot_ms, 2),
        "bot_cpu_ms_engine_encodes": round(engine_ms, 2),
        "cpu_ratio": round(engine_ms / bot_ms, 3),
        "wire_bytes_pcm": sum(map(len, pcm)),
        "wire_bytes_file": sum(map(len, file)),
        "goals": {"cpu_ratio": 0.2, "wire_bytes_per_20_s": 200_000},
    }


async def run(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = VoiceStore(tmp)
        store.add(
            1,
            "Narrator",
            owner_id=2,
            reference_flac=b"fLaC",
            latent=np.zeros((64, 80)),
            duration_s=10.0,
            revision="replay",
            consent_by=2,
            source="bench",
        )
        chunks = len(
            speech.plan(
                store, guild_id=1, user_id=2, voice_name="Narrator", words=MESSAGE, max_chars=2000
            ).chunks
        )
        backend = ReplayBackend([20.0 / chunks] * chunks)  # ~20 s of speech in all
        await one_say(store, backend)  # warm-up: imports, codec set-up
        samples = [await one_say(store, backend) for _ in range(runs)]
        modal = await modal_path(store, backend.audio, runs)
        store.close()

    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 2)

    totals = sorted(s["total_ms"] for s in samples)
    return {
        "runs": runs,
        "chunks": samples[0]["chunks"],
        "audio_seconds": round(samples[0]["audio_s"], 2),
        "file_bytes": samples[0]["bytes"],
        "median_ms": median("total_ms"),
        "p90_ms": round(totals[int(0.9 * (len(totals) - 1))], 2),
        "stages_median_ms": {
            "text_prepare": median("text_ms"),
            "synthesize_replay_stitch_usage": median("stitch_ms"),
            "encode_and_tag_ogg": median("encode_ms"),
        },
        "goal_ms": 100,
        "modal_path": modal,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.runs)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
