"""A burst of /say on the loopback Discord: `python -m bench.load [--requests 200] [--guilds 50]
[--in-flight 32] [--chunk-seconds 0.5] [--runs 1]` prints JSON (one object per run, then the medians).

All `--requests` invocations of `/say mode:file` arrive at once, spread evenly over `--guilds`
servers (one member per request, so no cooldown or quota is in the way); each is answered with a
voice message of about 20 s of speech in 2 chunks (`bench.pipeline.MESSAGE`). The replay answers as the
Modal backend does, with the finished file made on the engine side (`--pcm`: with PCM the bot stitches
and encodes itself, as the local backend does). The bot runs in a
process of its own, exactly as `bot.client.VoiceBot` runs in production, except that its speech
backend is a paced replay: it serves `--in-flight` requests at a time, makes each chunk in
`--chunk-seconds` whatever the bot does meanwhile, and answers with audio made in advance. This
process runs the loopback Discord (`tests.fakediscord`) and plays the members.

What is reported:
- `makespan_s`: from the first invocation to the last voice message Discord received.
- `ideal_s`: the makespan of a bot that adds no time at all, i.e. the replay backend's own: the
  requests take its `in_flight` slots in turn, each holding one for chunks × chunk-seconds, so
  ideal = ceil(requests ÷ in_flight) × chunks × chunk-seconds. (When the requests divide evenly
  among the slots, that is the backend's total chunk time ÷ in_flight.) `ratio` = makespan ÷ ideal.
- `loop_lag_p99_ms`: how late the bot's event loop woke from a 10 ms sleep, 99th percentile over
  the burst: how long a heartbeat, an acknowledgement or any other reply could have waited.
- `peak_rss_mb`: the most resident memory the bot's process and its encoder processes held at
  once (summed, sampled every 50 ms from /proc): this counts pages the encoders share with their
  fork-server once per process; `peak_pss_mb` splits them between their sharers (the memory the
  bot really takes); `bot_maxrss_mb` is the bot process's own high-water mark.
- `cpu_s` and `cpu_floor_s`: CPU time the bot and its encoders used during the burst, and that
  divided by the cores it may use: a makespan below `cpu_floor_s` is impossible on this machine,
  whatever the backend does. `load_average` is the machine's, at the end (others' work counts).
- `files`: voice messages received (each request's own file, in its own channel); `late_acks`:
  interactions acknowledged after Discord's 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench.pipeline import MESSAGE, speech_like
from bot.tts import SpeakerLatent, SpokenChunk, SpokenFile
from modal_tts import wire
from modal_tts.params import SynthesisParams

SPEECH_S = 20.0  # of audio per request, all chunks together
LAG_TICK_S = 0.010
RSS_EVERY_S = 0.050
ACK_DEADLINE_S = 3.0
FILES_WITHIN_S = 900.0  # a run that takes longer is broken, not slow


class PacedReplayBackend:
    """A TTSBackend serving `in_flight` requests at once, each chunk ready `chunk_s` after the one
    before (the GPU's pace, not the reader's), with audio made in advance."""

    name = "replay"

    def __init__(self, *, in_flight: int, chunk_s: float, chunks: int) -> None:
        self.chunk_s = chunk_s
        self.audio = [speech_like(SPEECH_S / chunks, seed) for seed in range(chunks)]
        self.chunks_made = 0
        self._slots = asyncio.Semaphore(in_flight)

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        return SpeakerLatent(np.zeros((8, 80), np.float16), "replay")

    async def synthesize(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        # The slot is the GPU's: it frees when the last chunk is made, however slowly they are read.
        async for i in self._paced(len(texts)):
            yield SpokenChunk(i, self.audio[i % len(self.audio)], self.chunk_s)

    async def info(self) -> dict[str, Any]:
        return {"revision": "replay"}

    async def close(self) -> None:
        return None

    async def _paced(self, chunks: int) -> AsyncIterator[int]:
        """Chunk numbers at the GPU's pace, holding one of the `in_flight` slots meanwhile."""
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        start = loop.time()
        loop.call_at(start + chunks * self.chunk_s, self._slots.release)
        for i in range(chunks):
            await asyncio.sleep(max(0.0, start + (i + 1) * self.chunk_s - loop.time()))
            self.chunks_made += 1
            yield i


class EncodedReplayBackend(PacedReplayBackend):
    """As `PacedReplayBackend`, answering as the Modal backend now does (`bot.tts.EncodingBackend`): a
    file request gets a progress per chunk and then the finished voice message, live speech gets Opus
    packets, all made in advance: the bot only forwards bytes."""

    def __init__(self, *, in_flight: int, chunk_s: float, chunks: int) -> None:
        super().__init__(in_flight=in_flight, chunk_s=chunk_s, chunks=chunks)
        from modal_tts import output
        from modal_tts.output import voice_messages

        pcm = output.stitch(self.audio)
        tags = output.Tags(title="Replay", voice="Narrator")
        self.message = voice_messages.voice_message(pcm, tags=tags, limit_bytes=10 * 2**20)
        self.packets = [tuple(output.opus_packets([chunk])) for chunk in self.audio]

    async def speak_file(
        self,
        texts: Sequence[str],
        latent: SpeakerLatent,
        params: SynthesisParams,
        seed: int,
        spec: wire.FileSpec,
    ) -> AsyncIterator[wire.Progress | SpokenFile]:
        async for i in self._paced(len(texts)):
            yield wire.Progress(i + 1, len(texts), 0.5)
        message = self.message
        yield SpokenFile("ogg", message.data, message.duration_s, self.chunk_s * len(texts), message.waveform)

    async def speak_live(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        async for i in self._paced(len(texts)):
            packets = self.packets[i % len(self.packets)]
            yield SpokenChunk(i, np.zeros(0, np.float32), self.chunk_s, packets=packets, peak=0.5)


# --- the bot's process --------------------------------------------------------------------------


def _bot_process(
    config: dict[str, Any],
    backend: dict[str, Any],
    conn: Connection,
    shards: tuple[list[int], int] | None = None,
) -> None:
    asyncio.run(_run_bot(config, backend, conn, shards))


async def _run_bot(
    config_fields: dict[str, Any],
    backend_options: dict[str, Any],
    conn: Connection,
    shards: tuple[list[int], int] | None = None,
) -> None:
    from bot.client import ShardedVoiceBot, VoiceBot, point_at_discord
    from bot.config import Config

    config = Config(**config_fields)
    point_at_discord(config)
    loop = asyncio.get_running_loop()
    lags: list[tuple[float, float]] = []

    async def watch_the_loop() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            now = time.monotonic()
            lags.append((now, now - before - LAG_TICK_S))

    told = asyncio.Event()
    loop.add_reader(conn.fileno(), told.set)
    options = dict(backend_options)
    backend = (EncodedReplayBackend if options.pop("encoded") else PacedReplayBackend)(**options)
    if shards:
        bot: VoiceBot = ShardedVoiceBot(
            config, backend=backend, shard_ids=shards[0], shard_count=shards[1], sync_on_start=0 in shards[0]
        )
    else:
        bot = VoiceBot(config, backend=backend)
    watcher = loop.create_task(watch_the_loop())
    runner = loop.create_task(bot.start(config.discord_token or ""))
    while not bot.is_ready():
        if runner.done():
            runner.result()  # it failed to start: say why
        await asyncio.sleep(0.05)
    conn.send("ready")
    await told.wait()
    conn.recv()  # "stop"
    loop.remove_reader(conn.fileno())
    await bot.close()
    with contextlib.suppress(Exception):
        await runner
    watcher.cancel()
    import resource

    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send({"lags": lags, "maxrss_kb": maxrss_kb, "chunks_made": backend.chunks_made})


# --- measuring from outside ---------------------------------------------------------------------


def _descendants(root: int) -> list[int]:
    """`root` and every process below it (the encoder pool forks from a fork-server child)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _memory_and_cpu(pids: list[int]) -> tuple[int, int, float]:
    """Resident bytes, proportional bytes (shared pages split between their sharers) and CPU
    seconds of `pids`, together."""
    rss, pss, ticks = 0, 0, 0
    page, hz = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                resident = int(f.read().split()[1]) * page
            with open(f"/proc/{pid}/smaps_rollup") as f:
                proportional = next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError, ValueError, StopIteration):
            continue
        rss, pss = rss + resident, pss + proportional
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return rss, pss, ticks / hz


class TreeSampler:
    """Peak resident memory and CPU time of a process tree, sampled in a thread of this process."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss = self.peak_pss = 0
        self.cpu_s = 0.0  # used since sampling began (the start-up's own CPU is not counted)
        self._cpu_before: float | None = None
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            rss, pss, cpu = await asyncio.to_thread(lambda: _memory_and_cpu(_descendants(self.root)))
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            if self._cpu_before is None:
                self._cpu_before = cpu
            self.cpu_s = max(self.cpu_s, cpu - self._cpu_before)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RSS_EVERY_S)

    def stop(self) -> None:
        self._stop.set()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


async def burst(
    *,
    requests: int = 200,
    guilds: int = 50,
    in_flight: int = 32,
    chunk_s: float = 0.5,
    processes: int = 1,
    database_url: str | None = None,
    encoded: bool = True,
) -> dict[str, Any]:
    """One burst, as described in the module docstring; returns its figures. `processes` > 1 runs
    that many bot processes, one shard each, over the library at `database_url` (PostgreSQL) or the
    data folder's; the replay backend's `in_flight` slots are split between them (one GPU's worth).
    `encoded=False` replays PCM that the bot encodes itself (the local backend's way, and the Modal
    path's before wire format 2)."""
    from bot import text
    from bot.store import open_library
    from tests.fakediscord import FakeDiscord

    chunks = len(text.prepare(MESSAGE))
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        async with FakeDiscord(patch_discord=False, ack_deadline=None) as fake:
            fake.sharding.shards = processes
            servers = [
                fake.add_guild(f"Server {n}", shard=(n % processes, processes) if processes > 1 else None)
                for n in range(guilds)
            ]
            members = [fake.add_member(servers[n % guilds], f"Member {n}") for n in range(requests)]
            store = open_library(Path(tmp) / "data", database_url)
            for guild in servers:
                store.add(
                    guild.id,
                    "Narrator",
                    owner_id=fake.bot_user.id,
                    reference_flac=b"fLaC",
                    latent=np.zeros((64, 80)),
                    duration_s=10.0,
                    revision="replay",
                    consent_by=fake.bot_user.id,
                    source="bench",
                )
            store.close()
            config = {
                "data_dir": Path(tmp) / "data",
                "backend": "local",
                "discord_token": fake.token,
                "discord_api_base": fake.api_base,
                "discord_gateway": fake.gateway_url,
                "voice_tls_verify": False,
                "database_url": database_url,
                "identify_interval_s": 0.1,
            }
            backend = {
                "in_flight": max(1, in_flight // processes),
                "chunk_s": chunk_s,
                "chunks": chunks,
                "encoded": encoded,
            }
            pipes = [multiprocessing.Pipe() for _ in range(processes)]
            bots = [
                multiprocessing.get_context("spawn").Process(
                    target=_bot_process,
                    args=(config, backend, theirs, ([n], processes) if processes > 1 else None),
                    name=f"bench-bot-{n}",
                )
                for n, (_, theirs) in enumerate(pipes)
            ]
            for bot in bots:
                bot.start()
            loop = asyncio.get_running_loop()
            try:
                for ours, _ in pipes:
                    await asyncio.wait_for(loop.run_in_executor(None, ours.recv), 120)  # "ready"
                await fake.wait_for_commands("say", timeout=30)
                samplers = [TreeSampler(bot.pid) for bot in bots]
                samplings = [loop.create_task(sampler.run()) for sampler in samplers]
                started = time.monotonic()
                records = await asyncio.gather(
                    *(
                        fake.invoke("say", {"text": MESSAGE, "voice": "Narrator", "mode": "file"}, user=m)
                        for m in members
                    )
                )

                def voice_messages() -> list[Any]:
                    return [r for r in fake.channel_messages() if r.is_voice_message and r.kind == "message"]

                await fake.wait_until(lambda: len(voice_messages()) >= requests, timeout=FILES_WITHIN_S)
                finished = max(r.at for r in voice_messages())
                await fake.wait_until(
                    lambda: all(any("🗣️" in (e.content or "") for e in r.edits) for r in records), timeout=60
                )
                for sampler in samplers:
                    sampler.stop()
                await asyncio.gather(*samplings)
                reports = []
                for ours, _ in pipes:
                    ours.send("stop")
                    reports.append(await asyncio.wait_for(loop.run_in_executor(None, ours.recv), 60))
            finally:
                for bot in bots:
                    await loop.run_in_executor(None, bot.join, 30)
                    if bot.is_alive():
                        bot.kill()
            files = voice_messages()
            per_channel = {c.id: 0 for g in servers for c in g.channels.values() if c.type == 0}
            for message in files:
                per_channel[message.channel_id] += 1
            late = [r for r in records if r.ack_delay is None or r.ack_delay > ACK_DEADLINE_S]

    makespan = finished - started
    ideal = math.ceil(requests / in_flight) * chunks * chunk_s
    lags = [lag for report in reports for at, lag in report["lags"] if started <= at <= finished]
    cores = _cores()
    cpu_s = sum(sampler.cpu_s for sampler in samplers)
    replied = [min(e.at for e in r.edits if "🗣️" in (e.content or "")) - started for r in records]
    return {
        "processes": processes,
        "library": "postgresql" if database_url else "sqlite",
        "audio_from_backend": "encoded" if encoded else "pcm",
        "requests": requests,
        "guilds": guilds,
        "in_flight": in_flight,
        "chunk_seconds": chunk_s,
        "chunks_per_request": chunks,
        "chunks_made": sum(report["chunks_made"] for report in reports),
        "speech_seconds_per_request": SPEECH_S,
        "makespan_s": round(makespan, 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(makespan / ideal, 3),
        "reply_p99_s": round(_p99(replied), 2),
        "loop_lag_p99_ms": round(1000 * _p99(lags), 1),
        "loop_lag_max_ms": round(1000 * max(lags, default=0.0), 1),
        "peak_rss_mb": round(sum(sampler.peak_rss for sampler in samplers) / 2**20, 1),
        "peak_rss_mb_per_process": [round(sampler.peak_rss / 2**20, 1) for sampler in samplers],
        "peak_pss_mb": round(sum(sampler.peak_pss for sampler in samplers) / 2**20, 1),
        "bot_maxrss_mb": round(max(report["maxrss_kb"] for report in reports) / 1024, 1),
        "cpu_s": round(cpu_s, 2),
        "cpu_s_per_say": round(cpu_s / requests, 4),
        "cpu_floor_s": round(cpu_s / cores, 2),
        "cores": cores,
        "files": len(files),
        "files_per_channel": sorted(set(per_channel.values())),
        "late_acks": len(late),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--guilds", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--chunk-seconds", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=1, help="report each run, then the medians")
    parser.add_argument(
        "--pcm", action="store_true", help="the backend returns PCM the bot encodes (before wire format 2)"
    )
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.runs):
        runs.append(
            asyncio.run(
                burst(
                    requests=args.requests,
                    guilds=args.guilds,
                    in_flight=args.in_flight,
                    chunk_s=args.chunk_seconds,
                    encoded=not args.pcm,
                )
            )
        )
        print(json.dumps(runs[-1]), flush=True)
    if args.runs > 1:
        keys = ("makespan_s", "ratio", "loop_lag_p99_ms", "peak_rss_mb", "peak_pss_mb", "cpu_floor_s")
        medians = {key: statistics.median(run[key] for run in runs) for key in keys}
        print(json.dumps({"median_of": args.runs, **medians}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
