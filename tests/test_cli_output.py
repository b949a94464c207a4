"""`--out` paths: written whole or not at all, through symlinks, in place for pipes and devices, and
never into folders that don't exist (a typo must not make directories)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bot.cli.common import check_writable, write_atomically
from bot.errors import OutputNotWritable


def test_a_missing_folder_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    out = tmp_path / "typo" / "deeper" / "hello.ogg"
    with pytest.raises(OutputNotWritable, match=r"there is no folder .*typo/deeper\. Choose another"):
        check_writable(out)
    with pytest.raises(OutputNotWritable):
        write_atomically(out, b"audio")
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_folder_should_be_is_named_as_typed(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(OutputNotWritable) as caught:
        check_writable(tmp_path / "README.md" / "x.ogg")
    assert f"{tmp_path}/README.md is a file, not a folder" in caught.value.message


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputNotWritable, match="it is a folder"):
        check_writable(tmp_path)


def test_a_symlink_is_written_through_and_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.ogg"
    real.write_bytes(b"old")
    link = tmp_path / "link.ogg"
    link.symlink_to(real)
    check_writable(link)
    write_atomically(link, b"new audio")
    assert link.is_symlink() and real.read_bytes() == b"new audio"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.ogg", "real.ogg"]  # no leftovers


def test_a_pipe_is_written_in_place_not_replaced_by_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    check_writable(fifo)
    write_atomically(fifo, b"streamed audio")
    reader.join(timeout=10)
    assert received == [b"streamed audio"]
    assert not fifo.is_file() and fifo.exists()  # still the pipe


def test_an_existing_file_is_replaced_whole_with_the_users_permissions(tmp_path: Path) -> None:
    out = tmp_path / "hello.ogg"
    out.write_bytes(b"old")
    write_atomically(out, b"new")
    assert out.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
