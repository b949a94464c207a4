"""Crash safety: processes killed with SIGKILL mid-clone leave a library that a fresh start repairs.

Two angles: the real `voicebot clone` killed at a random point in each quarter of its work after
start-up (4 kills), and a process that does nothing but add, rename and delete voices, killed right
after it reports a random number of steps (14 times per engine), so kills land inside the write path
itself rather than in interpreter start-up. The writer runs on both engines: on PostgreSQL a kill lands
mid-transaction (the server rolls it back and frees the guild's lock) or between two.

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
    # Points across the later part of a run (the first third is interpreter and torch start-up): one at
    # random in each of its quarters, so four kills spread over the whole of the work, never bunched.
    quarters = np.linspace(0.35 * work, 0.97 * work, 5)  # their bounds
    unkilled = [0, 1, 2, 3]  # the quarters no kill has landed in yet
    kills = attempts = 0
    # Two at a time: half the wall time, and two writers sharing one library, as CLI beside bot would.
    # A run that needed less CPU than its kill point finished: not a kill; its quarter gets another
    # point (at most 20 runs in all).
    with ThreadPoolExecutor(max_workers=2) as pool:
        while unkilled and attempts < 20:
            bands = [*unkilled[:2], int(rng.integers(4))][:2]  # the last one left still runs in a pair
            points = [rng.uniform(quarters[band], quarters[band + 1]) for band in bands]
            pair = [f"v{attempts}", f"v{attempts + 1}"]
            jobs = zip(pair, points, strict=True)
            codes = list(pool.map(lambda job: _kill_after_cpu(clone(job[0]), float(job[1])), jobs))
            for band, code in zip(bands, codes, strict=True):
                if code == -signal.SIGKILL:
                    kills += 1
                    if band in unkilled:
                        unkilled.remove(band)
            attempts += 2
    assert not unkilled, f"no kill landed in quarters {unkilled} in {attempts} runs ({kills} kills)"
    print(f"{kills} clones killed in {attempts} runs; one run needs about {work:.1f} CPU s")

    store = assert_consistent(str(data))
    cloned = {v.name for v in store.list(1)}
    assert {"whole", "whole2"} <= cloned <= {"whole", "whole2", *(f"v{i}" for i in range(attempts))}
    store.close()


# The writers are forked, one at a time, from one process that has imported the library already: each
# starts in milliseconds, so the whole run goes to kills in the write path, not to interpreter start-ups.
# The forker prints each writer's pid before letting it start, then how it ended.
WRITER = f"""
import os, sys, traceback
import numpy as np
from tests.engines import is_database_url, open_at
if is_database_url(sys.argv[1]):
    import psycopg  # as the library does on opening: once here, not in every writer

def write(attempt):
    store = open_at(sys.argv[1], max_voices_per_guild={LIMIT})
    latent = np.ones((64, 80), np.float16)
    flac = b"fLaC" + bytes(200_000)
    print("open", flush=True)
    i = 0
    def guild_of(i):
        return 1 + i % 2
    while True:
        store.add(guild_of(i), f"w{{attempt}}x{{i}}", owner_id=1, reference_flac=flac, latent=latent,
                  duration_s=6.0, revision="r", consent_by=1, source="crash")
        print("added", flush=True)
        if i % 3 == 1:
            store.rename(guild_of(i - 1), f"w{{attempt}}x{{i - 1}}", f"w{{attempt}}y{{i - 1}}")
            print("renamed", flush=True)
        if i % 3 == 2:
            store.delete(guild_of(i - 2), f"w{{attempt}}y{{i - 2}}")
            print("deleted", flush=True)
        i += 1

print("ready", flush=True)
for line in sys.stdin:
    go, release = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        os.close(release)
        os.read(go, 1)
        try:
            write(line.strip())
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(1)
    os.close(go)
    print("pid", pid, flush=True)
    os.write(release, b"go")
    os.close(release)
    print("exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
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


def _kill_after_steps(forker: subprocess.Popen, attempt: int, steps: int, err) -> int:
    """Fork writer `attempt` and SIGKILL it as soon as it reports `steps` finished steps; how many it
    reported."""
    forker.stdin.write(f"{attempt}\n")
    forker.stdin.flush()
    pid = int(forker.stdout.readline().removeprefix("pid "))
    assert forker.stdout.readline() == "open\n", err.read_text()
    done = 0
    while done < steps and forker.stdout.readline() in ("added\n", "renamed\n", "deleted\n"):
        done += 1
    os.kill(pid, signal.SIGKILL)  # the writer is already busy with its next step
    line = forker.stdout.readline()
    while line and not line.startswith("exit "):  # what it reported after `steps`, before it died
        line = forker.stdout.readline()
    assert line == f"exit {-signal.SIGKILL}\n", err.read_text()
    return done


def test_a_store_writer_killed_at_random_moments(library_at, tmp_path):
    open_at(library_at).close()
    rng = np.random.default_rng(7)
    reported = {}
    err = tmp_path / "writers.err"
    with err.open("w") as stderr:
        forker = subprocess.Popen(
            [sys.executable, "-c", WRITER, library_at],
            cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        assert forker.stdout.readline() == "ready\n", err.read_text()
        for attempt in range(14):
            reported[attempt] = _kill_after_steps(forker, attempt, int(rng.integers(1, 8)), err)
        forker.stdin.close()
        assert forker.wait(timeout=60) == 0, err.read_text()
        forker.stdout.close()
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


# Six processes forked from one that has imported the library, all let go at one moment: their opens
# (and so their migrations) race each other, not their interpreters' start-ups.
OPENER = """
import os, sys, traceback
from tests.engines import is_database_url, open_at
if is_database_url(sys.argv[1]):
    import psycopg  # as the library does on opening: once here, not in every opener
go, release = os.pipe()
pids = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        os.close(release)
        os.read(go, 1)
        code = 1
        try:
            store = open_at(sys.argv[1])
            assert store.integrity_check() == "ok"
            store.close()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    pids.append(pid)
os.write(release, b"g" * len(pids))
print(*(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids))
"""


def test_a_new_library_opened_by_several_processes_at_once(library_at, engine):
    """The bot and the CLI (or two CLI runs, or a fleet of bot processes) may create the library
    together: one migrates."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    opened = subprocess.run(
        [sys.executable, "-c", OPENER, library_at], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert opened.returncode == 0 and opened.stdout.split() == ["0"] * 6, opened.stdout + opened.stderr
    store = open_at(library_at)
    assert store.schema_version() == store.schema_latest
    if engine == "sqlite":
        assert store.schema_latest == len(__import__("bot.store").store.MIGRATIONS)
    else:  # each version's migration ran once
        versions = execute(store, "select version from schema_version order by version")
        assert versions == [(v,) for v in range(1, store.schema_latest + 1)]
    store.close()
