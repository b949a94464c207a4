"""Crash safety: processes killed with SIGKILL mid-clone leave a library that a fresh start repairs.

Two angles: the real `voicebot clone` killed at random moments (20 times), and a process that does
nothing but add and delete voices, killed at random moments (20 times) so kills land inside the write
path itself rather than mostly in interpreter start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bot.store import VoiceStore
from tests import media

ROOT = Path(__file__).resolve().parent.parent


def assert_consistent(data_dir: Path) -> VoiceStore:
    """A fresh start: integrity ok, every row has whole files, every folder has a row."""
    store = VoiceStore(data_dir)  # opening sweeps, as the bot and the CLI do at start-up
    assert store.integrity_check() == "ok"
    rows = {(v.guild_id, v.id): v for g in (1, 2) for v in store.list(g)}
    folders = {(int(p.parent.name), p.name) for p in (data_dir / "voices").glob("*/*")}
    assert folders == set(rows), folders ^ set(rows)
    for (guild_id, voice_id), voice in rows.items():
        folder = data_dir / "voices" / str(guild_id) / voice_id
        assert sorted(p.name for p in folder.iterdir()) == ["latent.npy", "reference.flac"]
        assert store.load_latent(voice).shape[1] == 80
        assert (folder / "reference.flac").read_bytes()[:4] == b"fLaC"
    return store


def _kill_at(cmd: list[str], delay: float, env: dict[str, str]) -> tuple[int, float]:
    """Start `cmd`, SIGKILL it `delay` seconds later; (exit code, seconds it lived)."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)  # a run that ends first is not killed
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    return proc.wait(), time.perf_counter() - began


def test_voicebot_clone_killed_at_random_moments(tmp_path, tiny_model_dir):
    clip = tmp_path / "clip.ogg"
    clip.write_bytes(media.encode(media.speech_like(6.0), "voice-message"))
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

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
            "--name",
            name,
            str(clip),
        ]

    # A pair of uninterrupted runs tells how long one lives when two share the machine.
    def timed(name: str) -> float:
        began = time.perf_counter()
        subprocess.run(clone(name), cwd=ROOT, env=env, capture_output=True, check=True)
        return time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=2) as pool:
        lifetime = min(pool.map(timed, ["whole", "whole2"]))

    rng = np.random.default_rng(2026)
    kills = attempts = 0
    # Two at a time: half the wall time, and two writers sharing one library, as CLI beside bot would.
    # A run that finished before its moment came is not a kill; keep going until 20 real ones.
    with ThreadPoolExecutor(max_workers=2) as pool:
        while kills < 20 and attempts < 40:
            # Moments across the later part of a run: the first third is interpreter and torch start-up.
            moments = rng.uniform(0.35 * lifetime, 0.95 * lifetime, size=2)
            pair = [f"v{attempts}", f"v{attempts + 1}"]
            jobs = zip(pair, moments, strict=True)
            for code, lived in pool.map(lambda job: _kill_at(clone(job[0]), float(job[1]), env), jobs):
                kills += code == -signal.SIGKILL
                if code == 0:  # finished before its moment: runs are quicker than measured
                    lifetime = min(lifetime, lived)
            attempts += 2
    assert kills >= 20, f"only {kills} of {attempts} runs were still alive to be killed"
    print(f"{kills} clones killed in {attempts} runs; one run lives about {lifetime:.1f} s")

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
i = 0
while True:
    guild = 1 + i % 2
    store.add(guild, f"w{sys.argv[2]}x{i}", owner_id=1, reference_flac=flac, latent=latent,
              duration_s=6.0, revision="r", consent_by=1, source="crash")
    if i % 3 == 2:
        store.delete(guild, f"w{sys.argv[2]}x{i - 2}")
    i += 1
"""


def test_a_store_writer_killed_at_random_moments(tmp_path):
    data = tmp_path / "data"
    VoiceStore(data).close()
    rng = np.random.default_rng(7)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for attempt in range(20):
        cmd = [sys.executable, "-c", WRITER, str(data), str(attempt)]
        assert _kill_at(cmd, float(rng.uniform(0.3, 0.8)), env)[0] == -signal.SIGKILL
    store = assert_consistent(data)
    assert store.count(1) + store.count(2) > 20  # the writers did get work done between kills
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
