"""Scaling past one process: `python -m bench.scale [--runs N] [--guilds N] [--part burst|store|all]`
prints JSON.

- `burst`: `bench.load`'s burst (200 `/say` from 50 servers, 32 in flight at the paced replay backend,
  which is split between the processes: one GPU's worth) through 1 process on SQLite (today's default),
  1 process on PostgreSQL, and 2 processes (one shard each) sharing PostgreSQL. Per configuration, the
  median over runs of: throughput (`/say` per second of makespan), CPU-seconds per `/say` (bot processes
  and their encoders, from the burst's start), the makespan against the burst's CPU floor (CPU-seconds ÷
  cores: no machine this size can do better), p99 of the time from the burst's start to each reply
  (`reply_p99_s`) and of the event loops' lag (`loop_lag_p99_ms`, the bot's own overhead on every
  reply), and peak RSS per process. `two_vs_one` compares 2 processes with 1, both on PostgreSQL.
- `say_path_reads`: the library reads one `/say` makes before any speech (the server's settings, the
  voice by name, its latent), p50/p99 in ms over many random lookups, SQLite versus PostgreSQL, on a
  library of 50 servers × 25 voices whose latents are the size a 30 s reference gives (644 × 80 float16,
  103 KB).
- `big_library`: PostgreSQL holding `--guilds` servers × 25 voices (default 10,000 × 25 = 250,000): the
  `/voices` list and a latent fetch at p50/p99. Latents here are 8 × 80 (1.3 KB) so the library fits on
  a test machine's disk: it times finding rows among 250,000, not moving bytes (measured above).
Each figure is the median over `--runs` runs. PostgreSQL is `VOICEBOT_DATABASE_URL` when set (it must
be an empty database), else one `pgserver` starts in a temporary folder (a development dependency).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bot.store import VoiceLibrary, open_library
from bot.store.files import latent_bytes

VOICES = 25
SAY_GUILDS = 50
LOOKUPS = 2000


@contextlib.contextmanager
def postgres(folder: Path) -> Iterator[str]:
    url = os.environ.get("VOICEBOT_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    server = pgserver.get_server(folder / "pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def fill(library: VoiceLibrary, guilds: int, latent: np.ndarray) -> None:
    for guild in range(1, guilds + 1):
        for i in range(VOICES):
            library.add(
                guild,
                f"Voice {i}",
                owner_id=7,
                reference_flac=b"fLaC" + bytes(2048),
                latent=latent,
                duration_s=30.0,
                revision="echo",
                consent_by=7,
                source="upload",
            )


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 3),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    }


def timed(call: Callable[[], Any], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def say_path(library: VoiceLibrary, rng: random.Random) -> Callable[[], Any]:
    def one() -> Any:
        guild = rng.randint(1, SAY_GUILDS)
        library.settings(guild)
        voice = library.get(guild, f"voice {rng.randrange(VOICES)}")
        return library.load_latent(voice)

    return one


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


def bulk_fill(url: str, guilds: int) -> None:
    """`guilds` × 25 voices written with COPY (the bot's own `add` would take an hour for 250,000)."""
    import psycopg

    from bot import names

    latent = latent_bytes(np.ones((8, 80), np.float16))
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy(
            "COPY voices (id, guild_id, name, name_key, owner_id, created_at, duration_s, sha256, consent_by,"
            " consent_at, revision, source) FROM STDIN"
        ) as copy:
            for guild in range(1, guilds + 1):
                for i in range(VOICES):
                    name = f"Voice {i}"
                    row = (f"{guild:010x}{i:06x}", guild, name, names.name_key(name), 7, "2026-01-01", 30.0)
                    copy.write_row((*row, "0" * 64, 7, "2026-01-01", "echo", "upload"))
        with conn.cursor().copy("COPY voice_files (voice_id, reference, latent) FROM STDIN") as copy:
            for guild in range(1, guilds + 1):
                for i in range(VOICES):
                    copy.write_row((f"{guild:010x}{i:06x}", b"fLaC", latent))
        conn.execute("ANALYZE")


BURST_KEYS = (
    "throughput_per_s",
    "makespan_s",
    "cpu_s_per_say",
    "cpu_floor_s",
    "makespan_over_cpu_floor",
    "reply_p99_s",
    "loop_lag_p99_ms",
    "peak_rss_mb_max_process",
)


def burst_part(url: str, runs: int, database: Callable[[str], str]) -> dict[str, Any]:
    import asyncio

    import psycopg

    from bench.load import burst

    configs = {
        "1_process_sqlite": (1, False),
        "1_process_postgresql": (1, True),
        "2_processes_postgresql": (2, True),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for run in range(runs):
        for name, (processes, on_postgres) in configs.items():
            target = None
            if on_postgres:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE burst_{run}_{processes}")
                target = database(f"burst_{run}_{processes}")
            figures = asyncio.run(burst(processes=processes, database_url=target))
            figures["throughput_per_s"] = figures["requests"] / figures["makespan_s"]
            figures["makespan_over_cpu_floor"] = figures["makespan_s"] / max(figures["cpu_floor_s"], 1e-9)
            figures["peak_rss_mb_max_process"] = max(figures["peak_rss_mb_per_process"])
            results[name].append({key: float(figures[key]) for key in BURST_KEYS})
            print(json.dumps({"run": run, "config": name, **results[name][-1]}), file=sys.stderr, flush=True)
    medians = {name: median_of(values) for name, values in results.items()}
    one, two = medians["1_process_postgresql"], medians["2_processes_postgresql"]
    medians["two_vs_one"] = {
        "throughput_ratio": round(two["throughput_per_s"] / one["throughput_per_s"], 3),
        "cpu_per_say_ratio": round(two["cpu_s_per_say"] / one["cpu_s_per_say"], 3),
    }
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--guilds", type=int, default=10_000, help="servers in the big PostgreSQL library")
    parser.add_argument("--part", choices=("burst", "store", "all"), default="all")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"runs": args.runs}
    latent = np.random.default_rng(0).standard_normal((644, 80)).astype(np.float16)
    with tempfile.TemporaryDirectory() as tmp, postgres(Path(tmp)) as url:
        import psycopg

        def database(name: str) -> str:
            if "?" not in url:
                return f"{url.rsplit('/', 1)[0]}/{name}"
            before, query = url.split("?", 1)
            return f"{before.rsplit('/', 1)[0]}/{name}?{query}"

        if args.part in ("burst", "all"):
            report["burst"] = burst_part(url, args.runs, database)
        if args.part == "burst":
            json.dump(report, sys.stdout, indent=2)
            print()
            return 0
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE say_path")
            conn.execute("CREATE DATABASE big_library")

        engines = {
            "sqlite": open_library(Path(tmp) / "data"),
            "postgresql": open_library(tmp, database("say_path")),
        }
        reads: dict[str, Any] = {}
        for engine, library in engines.items():
            fill(library, SAY_GUILDS, latent)
            runs = []
            for run in range(args.runs):
                one = say_path(library, random.Random(run))
                timed(one, 100)  # warm: connections made, pages cached
                runs.append(percentiles(timed(one, LOOKUPS)))
            reads[engine] = median_of(runs)
            library.close()
        reads["latent_kb"] = round(latent.nbytes / 1024)
        report["say_path_reads"] = reads

        big_url = database("big_library")
        open_library(tmp, big_url).close()  # the schema
        start = time.perf_counter()
        bulk_fill(big_url, args.guilds)
        library = open_library(tmp, big_url)
        rng = random.Random(1)
        voices = [library.get(rng.randint(1, args.guilds), "Voice 3") for _ in range(50)]
        runs_list, runs_latent = [], []
        for _ in range(args.runs):
            runs_list.append(percentiles(timed(lambda: library.list(rng.randint(1, args.guilds)), LOOKUPS)))
            runs_latent.append(percentiles(timed(lambda: library.load_latent(rng.choice(voices)), LOOKUPS)))
        report["big_library"] = {
            "voices": args.guilds * VOICES,
            "fill_s": round(time.perf_counter() - start, 1),
            "voices_list": median_of(runs_list),
            "latent_fetch": median_of(runs_latent),
        }
        library.close()
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
