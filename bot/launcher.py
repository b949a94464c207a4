"""`voicebot run --processes N`: N bot processes on this machine, each running a range of the bot's
shards (`voicebot run --shards A-B --shard-count S`), over one library (PostgreSQL, or the data
folder's SQLite when every process is on this machine).

The shard count is Discord's recommendation (`GET /gateway/bot`), raised to N so each process has a
shard. A process that exits on its own is started again after a pause that doubles from 1 s up to a
minute (back to 1 s once it has run for a minute), unless it failed at once on a setting (exit 2): that
would fail the same way again, so everything stops and says so. SIGTERM or Ctrl-C is passed on to
every process, which stops cleanly (voice disconnected, the library closed); one still running after
STOP_GRACE_S is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import discord

from bot.client import shard_label
from bot.config import Config, ConfigError

log = logging.getLogger("bot.launcher")

FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 60.0
STEADY_AFTER_S = 60.0  # a process that ran this long was fine: its next restart waits FIRST_PAUSE_S
STOP_GRACE_S = 30.0
SETTING_ERROR = 2  # a child's exit code for a bad setting (bot.cli.main)


def shard_ranges(shard_count: int, processes: int) -> list[list[int]]:
    """Shards 0..count-1 split into `processes` contiguous ranges, sizes differing by at most one."""
    base, extra = divmod(shard_count, processes)
    ranges, start = [], 0
    for index in range(processes):
        size = base + (1 if index < extra else 0)
        ranges.append(list(range(start, start + size)))
        start += size
    return ranges


async def recommended_shards(config: Config, token: str) -> int:
    """Discord's recommended shard count for this bot (`GET /gateway/bot`)."""
    base = (config.discord_api_base or discord.http.Route.BASE).rstrip("/")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/gateway/bot", headers={"Authorization": f"Bot {token}"}) as response,
    ):
        if response.status == 401:
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN (401). Copy a fresh token from the Developer Portal."
            )
        response.raise_for_status()
        return int((await response.json(content_type=None))["shards"])


def child_environment(config: Config) -> dict[str, str]:
    """The settings this launcher resolved (options included), for its processes to read alike."""
    env = dict(os.environ)
    env["VOICEBOT_DATA_DIR"] = str(config.data_dir)
    env["VOICEBOT_BACKEND"] = config.backend
    if config.weights_dir is not None:
        env["ECHO_WEIGHTS_DIR"] = str(config.weights_dir)
    if config.device:
        env["VOICEBOT_DEVICE"] = config.device
    return env


@dataclass
class Child:
    shards: list[int]
    shard_count: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return shard_label(self.shards, self.shard_count)

    def argv(self) -> list[str]:
        first, last = self.shards[0], self.shards[-1]
        return [
            sys.executable,
            "-m",
            "bot",
            "run",
            "--shards",
            f"{first}-{last}",
            "--shard-count",
            str(self.shard_count),
        ]


class Launcher:
    def __init__(self, config: Config, shard_count: int, processes: int) -> None:
        self.config = config
        self.children = [Child(shards, shard_count) for shards in shard_ranges(shard_count, processes)]
        self.stopping = asyncio.Event()
        self.failed: str | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        log.info(
            "Starting %d processes for %d shards: %s",
            len(self.children),
            self.children[0].shard_count,
            "; ".join(c.label for c in self.children),
        )
        keepers = [asyncio.create_task(self._keep_running(child)) for child in self.children]
        await self.stopping.wait()
        await self._stop_all()
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        if self.failed:
            raise ConfigError(self.failed)
        return 0

    async def _keep_running(self, child: Child) -> None:
        pause = FIRST_PAUSE_S
        env = child_environment(self.config)
        while not self.stopping.is_set():
            started = time.monotonic()
            child.process = await asyncio.create_subprocess_exec(*child.argv(), env=env)
            log.info("Process %d runs %s", child.process.pid, child.label)
            code = await child.process.wait()
            child.exits.append(code)
            if self.stopping.is_set():
                return
            ran = time.monotonic() - started
            if code == SETTING_ERROR and ran < STEADY_AFTER_S:
                self.failed = (
                    f"The process for {child.label} stopped on a setting (exit 2): see its message above."
                )
                self.stopping.set()
                return
            pause = FIRST_PAUSE_S if ran >= STEADY_AFTER_S else pause
            log.warning(
                "The process for %s exited (code %d); starting it again in %.0f s", child.label, code, pause
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=pause)
            child.restarts += 1
            pause = min(LONGEST_PAUSE_S, pause * 2)

    async def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), timeout=STOP_GRACE_S)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.error("Process %d did not stop within %.0f s; killing it", process.pid, STOP_GRACE_S)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(p.wait() for p in running))


async def launch(config: Config, processes: int, token: str, shard_count: int | None = None) -> int:
    count = max(processes, shard_count or await recommended_shards(config, token))
    return await Launcher(config, count, processes).run()


def parse_shards(raw: str) -> Sequence[int]:
    """ "0-3" or "2": the shard ids a process runs."""
    first, _, last = raw.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"{raw!r} is not a shard range: use A-B, like 0-3, or one shard id") from None
    if low < 0 or high < low:
        raise ValueError(f"{raw!r} is not a shard range: A-B with 0 <= A <= B")
    return list(range(low, high + 1))
