"""Crash safety: processes killed with SIGKILL mid-clone leave a library that a fresh start repairs.

Two angles: the real `voicebot clone` killed at random points of its work (8 times), and a process
that does nothing but add, rename and delete voices, killed right after it reports a random number of
steps (14 times per engine), so kills land inside the write path itself rather than mostly in
interpreter start-up. The writer runs on both engines: on PostgreSQL a kill lands mid-transaction
(the server rolls it back and frees the guild's lock) or between two.

Kills follow observed progress (CPU seconds the clone has used, steps the writer has reported), never
the wall clock: a loaded machine only makes the same kills take longer, and a fast one can't finish first.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bot import names
from bot.store import VoiceLibrary, VoiceStore
from tests import media
from tests.engines import execute, open_at

ROOT = Path(__file__).resolve().parent.parent
# One thread each: CPU seconds then measure work done, not time spent spinning in a thread pool.
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


LIMIT = 1000  # voices per guild, for the writers


def assert_consistent(where: str) -> VoiceLibrary:
    """A fresh start: integrity ok, every voice has its whole recording and latent and nothing is kept
    for a voice that isn't there, every guild within the limit, no two names alike."""
    store = open_at(where, max_voices_per_guild=LIMIT)  # opening sweeps, as the bot and the CLI do
    assert store.integrity_check() == "ok"
    rows = {(v.guild_id, v.id): v for g in (1, 2) for v in store.list(g)}
    if isinstance(store, VoiceStore):
        voices = store.voices_dir
        folders = {(int(p.parent.name), p.name) for p in voices.glob("[0-9]*/*")}
        assert folders == set(rows), folders ^ set(rows)
        assert not list(voices.glob(".staging/*"))  # no half-written add survives a start
        for (guild_id, voice_id), voice in rows.items():
            folder = voices / str(guild_id) / voice_id
            assert sorted(p.name for p in folder.iterdir()) == ["latent.npy", "reference.flac"]
            assert store.load_latent(voice).shape[1] == 80
            assert (folder / "reference.flac").read_bytes()[:4] == b"fLaC"
    else:
        assert execute(store, "select count(*) from voices where state != 'ready'") == [(0,)]
        files = execute(store, "select voice_id, reference from voice_files")
        kept = {voice_id: bytes(reference) for voice_id, reference in files}
        assert set(kept) == {voice_id for _, voice_id in rows}, set(kept) ^ {v for _, v in rows}
        for voice in rows.values():
            assert hashlib.sha256(kept[voice.id]).hexdigest() == voice.sha256
            assert store.read_reference(voice)[:4] == b"fLaC"
            assert store.load_latent(voice).shape[1] == 80
    for guild_id in (1, 2):
        listed = store.list(guild_id)
        assert len(listed) == store.count(guild_id) <= LIMIT
        keys = [names.name_key(v.name) for v in listed]
        assert len(keys) == len(set(keys)), sorted(keys)
    found = store.audit()
    assert not (found.look_alikes or found.reencodable or found.no_reference or found.files_missing)
    assert store.needing_reencode() == []
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
    # A run that needed less CPU than its kill point finished: not a kill; keep going until 8 real ones
    # (the suite's longest test: 8 kill points across the run, with room for 20 runs that finish).
    with ThreadPoolExecutor(max_workers=2) as pool:
        while kills < 8 and attempts < 28:
            # Points across the later part of a run: the first third is interpreter and torch start-up.
            points = rng.uniform(0.35 * work, 0.97 * work, size=2)
            pair = [f"v{attempts}", f"v{attempts + 1}"]
            jobs = zip(pair, points, strict=True)
            codes = list(pool.map(lambda job: _kill_after_cpu(clone(job[0]), float(job[1])), jobs))
            kills += sum(code == -signal.SIGKILL for code in codes)
            attempts += 2
    assert kills >= 8, f"only {kills} of {attempts} runs were still working when their point came"
    print(f"{kills} clones killed in {attempts} runs; one run needs about {work:.1f} CPU s")

    store = assert_consistent(str(data))
    cloned = {v.name for v in store.list(1)}
    assert {"whole", "whole2"} <= cloned <= {"whole", "whole2", *(f"v{i}" for i in range(attempts))}
    store.close()


WRITER = f"""
import sys, numpy as np
from tests.engines import open_at
store = open_at(sys.argv[1], max_voices_per_guild={LIMIT})
latent = np.ones((64, 80), np.float16)
flac = b"fLaC" + bytes(200_000)
print("open", flush=True)
i = 0
def guild_of(i):
    return 1 + i % 2
while True:
    store.add(guild_of(i), f"w{{sys.argv[2]}}x{{i}}", owner_id=1, reference_flac=flac, latent=latent,
              duration_s=6.0, revision="r", consent_by=1, source="crash")
    print("added", flush=True)
    if i % 3 == 1:
        store.rename(guild_of(i - 1), f"w{{sys.argv[2]}}x{{i - 1}}", f"w{{sys.argv[2]}}y{{i - 1}}")
        print("renamed", flush=True)
    if i % 3 == 2:
        store.delete(guild_of(i - 2), f"w{{sys.argv[2]}}y{{i - 2}}")
        print("deleted", flush=True)
    i += 1
"""


def _writer_states(attempt: int, limit: int) -> list[frozenset[tuple[int, str]]]:
    """What writer `attempt` holds after each of its first `limit` steps (index k: after k steps)."""
    held: set[tuple[int, str]] = set()
    states = [frozenset(held)]
    i = 0

    def guild_of(i: int) -> int:
        return 1 + i % 2

    while len(states) <= limit:
        held.add((guild_of(i), f"w{attempt}x{i}"))
        states.append(frozenset(held))
        if i % 3 == 1:
            held.discard((guild_of(i - 1), f"w{attempt}x{i - 1}"))
            held.add((guild_of(i - 1), f"w{attempt}y{i - 1}"))
            states.append(frozenset(held))
        if i % 3 == 2:
            held.discard((guild_of(i - 2), f"w{attempt}y{i - 2}"))
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


def test_a_store_writer_killed_at_random_moments(library_at):
    open_at(library_at).close()
    rng = np.random.default_rng(7)
    reported = {}
    for attempt in range(14):
        cmd = [sys.executable, "-c", WRITER, library_at, str(attempt)]
        reported[attempt] = _kill_after_steps(cmd, int(rng.integers(1, 8)))
    store = assert_consistent(library_at)
    held = {(v.guild_id, v.name) for g in (1, 2) for v in store.list(g)}
    accounted: set[tuple[int, str]] = set()
    for attempt, steps in reported.items():
        mine = frozenset(v for v in held if v[1].startswith((f"w{attempt}x", f"w{attempt}y")))
        # Every reported step holds; the steps it took after its last report are each whole or undone.
        assert mine in _writer_states(attempt, steps + 200)[steps:], (attempt, steps, sorted(mine))
        accounted |= mine
    assert accounted == held  # nothing else appeared
    assert len(held) >= 14  # the writers did get work done between kills
    store.close()


OPENER = """
import sys
from tests.engines import open_at
store = open_at(sys.argv[1])
assert store.integrity_check() == "ok"
store.close()
"""


def test_a_new_library_opened_by_several_processes_at_once(library_at, engine):
    """The bot and the CLI (or two CLI runs, or a fleet of bot processes) may create the library
    together: one migrates."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-c", OPENER, library_at]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE) for _ in range(6)]
    results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in procs]
    assert all(code == 0 for code, _ in results), [err for code, err in results if code]
    store = open_at(library_at)
    assert store.schema_version() == store.schema_latest
    if engine == "sqlite":
        assert store.schema_latest == len(__import__("bot.store").store.MIGRATIONS)
    else:  # each version's migration ran once
        versions = execute(store, "select version from schema_version order by version")
        assert versions == [(v,) for v in range(1, store.schema_latest + 1)]
    store.close()
