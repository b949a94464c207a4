"""What the HTTP speech API adds to the engine: `python -m bench.api [--requests 10] [--concurrent 50]
[--format mp3] [--runs 1]` prints JSON (one object per run, then the medians of the runs).

The API runs as `voicebot api --backend local` runs it: its own process, the engine (the tiny model on
this CPU, its speech ended where Echo's would end, `modal_tts.bench.EndsSpeech`) behind the batching
scheduler in that process, the library in a data folder. The only addition is a wrapper round the
backend that notes, per request, when the engine was asked, when its first piece and its last piece
came (CLOCK_MONOTONIC is one clock for both processes). This process is the client: aiohttp, a
streaming read of each response.

Goals (issue 20):
- **First byte**: through the API, ≤ 1.1 × the engine's own time to first audio + 20 ms (medians of
  `--requests` requests made one at a time: `ttfb_ms` against `engine_first_ms`).
- **Concurrency**: `--concurrent` streams at once all complete, no error, and share batches
  (`rows_per_batch` > 1: the engine's blocks over its sampler calls).
- **Overhead**: p99 ≤ 30 ms of API time per request beyond the engine, with `--concurrent` streams
  open at once: a response's last byte at the client minus the request's start, less the engine's time
  for it (asked → last piece). It counts the HTTP exchange, the key check, planning, the quota's
  reservation and settlement, and encoding; the engine's queueing is the engine's. The second wave's
  requests start spread over `--ramp-s` (default 1 s), so all of them are open at once
  (`ramped_most_at_once`) without all arriving in one instant.
- Also reported, not a goal: the first wave, every request sent in the same instant (`burst_*`). There
  each request's planning waits for the CPU work of those that arrived with it (Python, one event loop
  and a few library threads, on cores the tiny model's sampler shares on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

GUILD = 1
GOAL_TTFB_RATIO, GOAL_TTFB_SLACK_MS, GOAL_OVERHEAD_P99_MS = 1.1, 20.0, 30.0
TEXT = "Request {i}: the train to the coast leaves at seven, so pack the night before."


class TimedBackend:
    """The server's backend, noting each request's engine times by its first chunk's text."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.times: dict[str, tuple[float, float, float]] = {}  # text → asked, first piece, last piece
        self.pieces = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    async def synthesize(self, texts: Sequence[str], *args: Any) -> AsyncIterator[Any]:
        asked = time.monotonic()
        first = None
        async for piece in self.backend.synthesize(texts, *args):
            first = first or time.monotonic()
            self.pieces += 1
            yield piece
        self.times[texts[0]] = (asked, first or asked, time.monotonic())


def _server(conn: Connection, data: str, engine_threads: int) -> None:
    if engine_threads:
        import torch

        torch.set_num_threads(engine_threads)
    asyncio.run(_serve(conn, Path(data)))


async def _serve(conn: Connection, data: Path) -> None:
    from bot import audio
    from bot.api.server import create_app, serve
    from bot.api.service import ApiService
    from bot.audio.sample import speech_like
    from bot.config import Config
    from bot.limits import Limits
    from bot.store import open_library
    from bot.tts.local_backend import LocalBackend
    from modal_tts.bench import EndsSpeech
    from modal_tts.engine import EchoEngine
    from modal_tts.tiny import write_tiny_model

    engine = EchoEngine.from_dir(write_tiny_model(data / "model", seed=0), device="cpu")
    store = open_library(data / "library")
    reference = speech_like(6.0)
    store.add(
        GUILD,
        "Ann",
        owner_id=1,
        reference_flac=audio.encode(reference, "flac"),
        latent=engine.encode_speaker(reference),
        duration_s=6.0,
        revision=engine.revision,
        consent_by=1,
        source="bench",
    )
    _, key = store.create_api_key(GUILD, created_by=1, name="bench")
    local = LocalBackend(engine=EndsSpeech(engine), max_waiting_rows=512)
    timed = TimedBackend(local)
    config = Config(data_dir=data / "library")
    service = ApiService(store, timed, Limits(store, holder="api bench"), config)  # type: ignore[arg-type]
    runner = await serve(create_app(service), "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    conn.send((f"http://{host}:{port}", key))
    while (asked := await asyncio.to_thread(conn.recv)) != "stop":
        assert asked == "times"
        conn.send({"times": dict(timed.times), "pieces": timed.pieces, "batches": local.batches_run})
    await runner.cleanup()
    await local.close()
    store.close()


async def _speak(
    http: aiohttp.ClientSession, url: str, key: str, text: str, fmt: str, after: float = 0.0
) -> dict[str, Any]:
    await asyncio.sleep(after)
    started = time.monotonic()
    first = None
    size = 0
    async with http.post(
        f"{url}/v1/audio/speech",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "tts-1", "voice": "Ann", "input": text, "response_format": fmt},
    ) as response:
        if response.status != 200:
            return {"text": text, "error": f"{response.status} {await response.text()}"}
        async for data in response.content.iter_any():
            first = first or time.monotonic()
            size += len(data)
    return {"text": text, "started": started, "first": first, "last": time.monotonic(), "bytes": size}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _joined(
    replies: list[dict[str, Any]], times: dict[str, tuple[float, float, float]]
) -> list[dict[str, float]]:
    """Each reply with its engine times (the engine sees the text as `/say` prepares it)."""
    from bot.text import prepare

    out = []
    for reply in replies:
        (chunk,) = prepare(reply["text"], max_chars=4096)
        asked, first, last = times[chunk]
        out.append(
            {
                "ttfb_ms": (reply["first"] - reply["started"]) * 1000,
                "engine_first_ms": (first - asked) * 1000,
                "overhead_ms": ((reply["last"] - reply["started"]) - (last - asked)) * 1000,
                "before_engine_ms": (asked - reply["started"]) * 1000,
                "after_engine_ms": (reply["last"] - last) * 1000,
            }
        )
    return out


def _most_at_once(replies: list[dict[str, Any]]) -> int:
    """The most streams open at one moment."""
    edges = sorted([(r["started"], 1) for r in replies] + [(r["last"], -1) for r in replies])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def measure(
    *,
    requests: int = 10,
    concurrent: int = 50,
    fmt: str = "mp3",
    ramp_s: float = 1.0,
    engine_threads: int = 0,
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as data:
        ours, theirs = context.Pipe()
        server = context.Process(target=_server, args=(theirs, data, engine_threads), daemon=True)
        server.start()
        try:
            url, key = await asyncio.to_thread(ours.recv)
            timeout = aiohttp.ClientTimeout(total=600)
            async with aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
            ) as http:
                for i in range(2):  # warm: the first sampler calls of each shape
                    await _speak(http, url, key, TEXT.format(i=f"warm {i}"), fmt)
                alone = [await _speak(http, url, key, TEXT.format(i=i), fmt) for i in range(requests)]
                ours.send("times")
                before = await asyncio.to_thread(ours.recv)
                burst = await asyncio.gather(
                    *(_speak(http, url, key, TEXT.format(i=f"c{i}"), fmt) for i in range(concurrent))
                )
                ramped = await asyncio.gather(
                    *(
                        _speak(http, url, key, TEXT.format(i=f"r{i}"), fmt, after=i * ramp_s / concurrent)
                        for i in range(concurrent)
                    )
                )
            ours.send("times")
            after = await asyncio.to_thread(ours.recv)
            ours.send("stop")
        finally:
            server.join(30)
            if server.is_alive():
                server.kill()
    errors = [r["error"] for r in [*alone, *burst, *ramped] if "error" in r]
    sequential = _joined([r for r in alone if "error" not in r], after["times"])
    together = _joined([r for r in burst if "error" not in r], after["times"])
    spread = _joined([r for r in ramped if "error" not in r], after["times"])
    ttfb = statistics.median(r["ttfb_ms"] for r in sequential)
    engine_first = statistics.median(r["engine_first_ms"] for r in sequential)
    rows_per_batch = (after["pieces"] - before["pieces"]) / max(1, after["batches"] - before["batches"])
    goal_ttfb = GOAL_TTFB_RATIO * engine_first + GOAL_TTFB_SLACK_MS
    completed = [r for r in [*burst, *ramped] if "error" not in r]

    def p(rows: list[dict[str, float]], field: str, q: float) -> float:
        return round(_p([r[field] for r in rows], q), 1)

    return {
        "format": fmt,
        "engine_threads": engine_threads or "torch's default",
        "requests": requests,
        "ttfb_ms": round(ttfb, 1),
        "engine_first_ms": round(engine_first, 1),
        "ttfb_goal_ms": round(goal_ttfb, 1),
        "ttfb_ok": ttfb <= goal_ttfb,
        "concurrent": concurrent,
        "completed": len(completed),
        "errors": errors[:5],
        "rows_per_batch": round(rows_per_batch, 2),
        "burst_most_at_once": _most_at_once([r for r in burst if "error" not in r]),
        "ramped_most_at_once": _most_at_once([r for r in ramped if "error" not in r]),
        "concurrent_ok": not errors and len(completed) == 2 * concurrent and rows_per_batch > 1,
        "sequential_overhead_p50_ms": p(sequential, "overhead_ms", 0.5),
        "sequential_overhead_p99_ms": p(sequential, "overhead_ms", 0.99),
        "ramped_overhead_p50_ms": p(spread, "overhead_ms", 0.5),
        "ramped_overhead_p99_ms": p(spread, "overhead_ms", 0.99),
        "ramped_before_engine_p99_ms": p(spread, "before_engine_ms", 0.99),
        "ramped_after_engine_p99_ms": p(spread, "after_engine_ms", 0.99),
        "overhead_ok": _p([r["overhead_ms"] for r in spread], 0.99) <= GOAL_OVERHEAD_P99_MS,
        # all at once: each waits for the CPU work of those that arrived in the same instant
        "burst_overhead_p50_ms": p(together, "overhead_ms", 0.5),
        "burst_overhead_p99_ms": p(together, "overhead_ms", 0.99),
        "burst_before_engine_p99_ms": p(together, "before_engine_ms", 0.99),
        "burst_after_engine_p99_ms": p(together, "after_engine_ms", 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10, help="one at a time, for the first-byte goal")
    parser.add_argument("--concurrent", type=int, default=50, help="streams at once")
    parser.add_argument("--format", default="mp3", choices=("mp3", "opus", "aac", "flac", "wav", "pcm"))
    parser.add_argument("--ramp-s", type=float, default=1.0, help="the second wave's starts spread over this")
    parser.add_argument(
        "--engine-threads",
        type=int,
        default=0,
        help="torch threads of the tiny model's sampler (0: torch's own)",
    )
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    reports = []
    for _ in range(args.runs):
        report = asyncio.run(
            measure(
                requests=args.requests,
                concurrent=args.concurrent,
                fmt=args.format,
                ramp_s=args.ramp_s,
                engine_threads=args.engine_threads,
            )
        )
        reports.append(report)
        print(json.dumps(report), flush=True)
    if args.runs > 1:
        numbers = [k for k, v in reports[0].items() if isinstance(v, float)]
        print(json.dumps({"medians": {k: statistics.median(r[k] for r in reports) for k in numbers}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
