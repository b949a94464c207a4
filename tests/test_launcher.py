"""`voicebot run --processes N` / `--shards A-B --shard-count N`: how shards are split, what the command
line refuses, and how the launcher keeps its processes running and stops them."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time

import pytest

from bot import launcher
from bot.cli import main
from bot.client import shard_label
from bot.config import Config, ConfigError


def test_shards_are_split_into_contiguous_ranges_of_near_equal_size():
    assert launcher.shard_ranges(4, 2) == [[0, 1], [2, 3]]
    assert launcher.shard_ranges(5, 2) == [[0, 1, 2], [3, 4]]
    assert launcher.shard_ranges(3, 3) == [[0], [1], [2]]
    assert list(itertools.chain(*launcher.shard_ranges(17, 4))) == list(range(17))


def test_a_process_is_named_by_its_shards():
    assert shard_label([0, 1], 4) == "shards 0-1 of 4"
    assert shard_label([3], 8) == "shard 3 of 8"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--shards", "0-3"], "needs --shard-count"),
        (["--shard-count", "8"], "goes with --shards"),
        (["--shards", "2-1", "--shard-count", "8"], "not a shard range"),
        (["--shards", "0-8", "--shard-count", "8"], "run from 0 to 7"),
        (["--shards", "x", "--shard-count", "8"], "not a shard range"),
        (["--processes", "2", "--shards", "0-1"], "don't go together"),
        (["--processes", "0"], "allowed is 1 to 64"),
        (["--processes", "4", "--shard-count", "2"], "fewer than --processes"),
    ],
)
def test_a_wrong_combination_is_one_line_and_exit_2(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err


async def _run_with(monkeypatch, script: str, until) -> launcher.Launcher:
    """A launcher whose processes run `script` instead of the bot, stopped once `until(launcher)`."""
    monkeypatch.setattr(launcher.Child, "argv", lambda self: [sys.executable, "-c", script])
    monkeypatch.setattr(launcher, "FIRST_PAUSE_S", 0.05)
    running = launcher.Launcher(Config(), shard_count=2, processes=2)
    task = asyncio.create_task(running.run())
    for _ in range(600):  # at most 30 s
        if until(running) or task.done():
            break
        await asyncio.sleep(0.05)
    running.stopping.set()
    await asyncio.wait_for(task, timeout=30)
    return running


async def test_a_process_that_dies_is_started_again_with_doubling_pauses(monkeypatch):
    running = await _run_with(monkeypatch, "import sys; sys.exit(3)", lambda r: r.children[0].restarts >= 3)
    child = running.children[0]
    assert child.restarts >= 3 and child.exits[:3] == [3, 3, 3]  # the one running at the stop: SIGTERM


async def test_sigterm_stops_every_process_cleanly(monkeypatch, tmp_path):
    script = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
        f"open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close(); time.sleep(60)"
    )
    started = time.monotonic()
    running = await _run_with(monkeypatch, script, lambda r: len(os.listdir(tmp_path)) == 2)
    assert time.monotonic() - started < 20
    assert [c.exits for c in running.children] == [[0], [0]]  # each stopped by its SIGTERM handler
    assert all(c.restarts == 0 for c in running.children)


async def test_a_process_that_fails_on_a_setting_at_once_stops_them_all(monkeypatch):
    with pytest.raises(ConfigError, match="stopped on a setting"):
        await _run_with(monkeypatch, "import sys; sys.exit(2)", lambda r: False)


def test_the_launcher_passes_its_resolved_settings_on(tmp_path):
    env = launcher.child_environment(Config(data_dir=tmp_path, backend="local", weights_dir=tmp_path / "w"))
    assert env["VOICEBOT_DATA_DIR"] == str(tmp_path) and env["VOICEBOT_BACKEND"] == "local"
    assert env["ECHO_WEIGHTS_DIR"] == str(tmp_path / "w")
    assert signal.SIGTERM  # the stop signal the launcher forwards (a Unix launcher)
