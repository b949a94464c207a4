"""Crash safety: processes killed with SIGKILL mid-clone leave a library that a fresh start repairs.

Two angles: the real `voicebot clone` killed at random points of its work (20 times), and a process that
does nothing but add and delete voices, killed right after it reports a random number of steps (20
times), so kills land inside the write path itself rather than mostly in interpreter start-up.

Kills follow observed progress (CPU seconds the clone has used, steps the writer has reported), never
the wall clock: a loaded machine only makes the same kills take longer, and a fast one can't finish first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bot.store import VoiceStore
from tests import media

ROOT = Path(__file__).resolve().parent.parent
# One thread each: CPU seconds then measure work done, not time spent spinning in a thread pool.
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def assert_consistent(data_dir: Path) -> VoiceStore:
    """A fresh start: integrity ok, every row has whole files, every folder has a row."""
    store = VoiceStore(data_dir)  # opening sweeps, as the bot and the CLI do at start-up
    assert store.integrity_check() == "ok"
    rows = {(v.guild_id, v.id): v for g in (1, 2) for v in store.list(g)}
    folders = {(int(p.parent.name), p.name) for p in (data_dir / "voices").glob("[0-9]*/*")}
    assert folders == set(rows), folders ^ set(rows)
    assert not list((data_dir / "voices").glob(".staging/*"))  # no half-written add survives a start
    for (guild_id, voice_id), voice in rows.items():
        folder = data_dir / "voices" / str(guild_id) / voice_id
        assert sorted(p.name for p in folder.iterdir()) == ["latent.npy", "reference.flac"]
        assert store.load_latent(voice).shape[1] == 80
        assert (folder / "reference.flac").read_bytes()[:4] == b"fLaC"
    return store


def _cpu_seconds(pid: int) -> float | None:
    """CPU time a live process has used so far (user + system), from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _whole_run_cpu(cmd: list[str]) -> float:
    """Run `cmd` to the end; the CPU seconds it needed."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        assert proc.returncode == 0, err.read().decode()
    return usage.ru_utime + usage.ru_stime


def _kill_after_cpu(cmd: list[str], cpu_s: float) -> int:
    """Start `cmd` and SIGKILL it once it has used `cpu_s` CPU seconds; its exit code (0: it finished)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        used = _cpu_seconds(proc.pid)
        if used is not None and used >= cpu_s:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)  # how often to look, not a deadline: the kill waits for the work
    return proc.wait()


def test_voicebot_clone_killed_at_random_moments(tmp_path, tiny_model_dir):
    clip = tmp_path / "clip.ogg"
    clip.write_bytes(media.encode(media.speech_like(6.0), "voice-message"))
    data = tmp_path / "data"

    def clone(name: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bot",
            "clone",
            "--data-dir",
            str(data),
            "--backend",
            "local",
            "--weights",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--guild",
            "1",
            "--consent",
            "7",
            "--name",
            name,
            str(clip),
        ]

    # Two whole runs say how much CPU one needs; kills then land at fractions of that work.
    with ThreadPoolExecutor(max_workers=2) as pool:
        work = min(pool.map(lambda name: _whole_run_cpu(clone(name)), ["whole", "whole2"]))

    rng = np.random.default_rng(2026)
    kills = attempts = 0
    # Two at a time: half the wall time, and two writers sharing one library, as CLI beside bot would.
    # A run that needed less CPU than its kill point finished: not a kill; keep going until 12 real ones
    # (the suite's longest test: 12 kill points across the run, with room for 28 runs that finish).
    with ThreadPoolExecutor(max_workers=2) as pool:
        while kills < 12 and attempts < 40:
            # Points across the later part of a run: the first third is interpreter and torch start-up.
            points = rng.uniform(0.35 * work, 0.97 * work, size=2)
            pair = [f"v{attempts}", f"v{attempts + 1}"]
            jobs = zip(pair, points, strict=True)
            codes = list(pool.map(lambda job: _kill_after_cpu(clone(job[0]), float(job[1])), jobs))
            kills += sum(code == -signal.SIGKILL for code in codes)
            attempts += 2
    assert kills >= 12, f"only {kills} of {attempts} runs were still working when their point came"
    print(f"{kills} clones killed in {attempts} runs; one run needs about {work:.1f} CPU s")

    store = assert_consistent(data)
    names = {v.name for v in store.list(1)}
    assert {"whole", "whole2"} <= names <= {"whole", "whole2", *(f"v{i}" for i in range(attempts))}
    store.close()


WRITER = """
import sys, numpy as np
from bot.store import VoiceStore
store = VoiceStore(sys.argv[1], max_voices_per_guild=1000)
latent = np.ones((64, 80), np.float16)
flac = b"fLaC" + bytes(200_000)
print("open", flush=True)
i = 0
while True:
    guild = 1 + i % 2
    store.add(guild, f"w{sys.argv[2]}x{i}", owner_id=1, reference_flac=flac, latent=latent,
              duration_s=6.0, revision="r", consent_by=1, source="crash")
    print("added", flush=True)
    if i % 3 == 2:
        store.delete(guild, f"w{sys.argv[2]}x{i - 2}")
        print("deleted", flush=True)
    i += 1
"""


def _writer_states(attempt: int, limit: int) -> list[frozenset[tuple[int, str]]]:
    """What writer `attempt` holds after each of its first `limit` steps (index k: after k steps)."""
    held: set[tuple[int, str]] = set()
    states = [frozenset(held)]
    i = 0
    while len(states) <= limit:
        guild = 1 + i % 2
        held.add((guild, f"w{attempt}x{i}"))
        states.append(frozenset(held))
        if i % 3 == 2:
            held.discard((guild, f"w{attempt}x{i - 2}"))
            states.append(frozenset(held))
        i += 1
    return states


def _kill_after_steps(cmd: list[str], steps: int) -> int:
    """Start the writer and SIGKILL it as soon as it reports `steps` finished steps; how many it reported."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "open\n", proc.stderr.read()
    done = 0
    while done < steps and proc.stdout.readline():
        done += 1
    proc.send_signal(signal.SIGKILL)  # the writer is already busy with its next step
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return done


def test_a_store_writer_killed_at_random_moments(tmp_path):
    data = tmp_path / "data"
    VoiceStore(data).close()
    rng = np.random.default_rng(7)
    reported = {}
    for attempt in range(20):
        cmd = [sys.executable, "-c", WRITER, str(data), str(attempt)]
        reported[attempt] = _kill_after_steps(cmd, int(rng.integers(1, 8)))
    store = assert_consistent(data)
    held = {(v.guild_id, v.name) for g in (1, 2) for v in store.list(g)}
    for attempt, steps in reported.items():
        mine = frozenset(v for v in held if v[1].startswith(f"w{attempt}x"))
        # Every reported step holds; the steps it took after its last report are each whole or undone.
        assert mine in _writer_states(attempt, steps + 200)[steps:], (attempt, steps, sorted(mine))
    assert len(held) >= 20  # the writers did get work done between kills
    store.close()


OPENER = """
import sys
from bot.store import VoiceStore
store = VoiceStore(sys.argv[1])
assert store.integrity_check() == "ok"
store.close()
"""


def test_a_new_library_opened_by_several_processes_at_once(tmp_path):
    """The bot and the CLI (or two CLI runs) may create the library together: one migrates."""
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, str(data)], cwd=ROOT, env=env, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in procs]
    assert all(code == 0 for code, _ in results), [err for code, err in results if code]
    store = VoiceStore(data)
    assert store.schema_version() == len(__import__("bot.store").store.MIGRATIONS)
    store.close()
