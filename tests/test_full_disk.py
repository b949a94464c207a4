"""A library on a disk that has filled up: one line saying so (exit 74), not SQLite's "disk I/O error".

The first test fills a real filesystem (a 1 MiB tmpfs, which needs the right to mount: root, as the
CI machine and the development machine run); the second checks the same decision on the error itself.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import LibraryFull
from bot.store import VoiceStore
from bot.store.faults import library_error


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"can't mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)  # even if a file is still open


def fill(disk: Path) -> None:
    f = open(disk / "filler", "wb")  # closing it flushes into the full disk, which fails
    try:
        while True:
            f.write(b"x" * 4096)
            f.flush()
    except OSError:
        pass
    with contextlib.suppress(OSError):
        f.close()


def test_opening_a_library_on_a_full_disk_says_the_disk_is_full(small_disk, capsys):
    VoiceStore(small_disk / "data").close()
    fill(small_disk)
    with pytest.raises(LibraryFull):
        VoiceStore(small_disk / "data")
    assert (
        main(["--data-dir", str(small_disk / "data"), "voice", "rename", "--guild", "1", "--voice", "A", "B"])
        == 74
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on the disk holding" in err and "I/O error" not in err


def test_sqlites_disk_io_error_is_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = 4874  # SQLITE_IOERR_SHMSIZE: growing the WAL index failed
    usage = shutil.disk_usage(tmp_path)
    assert library_error(error, tmp_path) is None  # free space left: a real I/O error, said as such
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4096))
    assert isinstance(library_error(error, tmp_path), LibraryFull)
