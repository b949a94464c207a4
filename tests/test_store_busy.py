"""Another process holding the library's write lock (a backup, an `sqlite3` or `psql` shell, another
voicebot): readers go on, a write waits at most its busy timeout and then says "busy, try again", nobody
freezes. On SQLite the lock is the file's write lock; on PostgreSQL, a shell's `LOCK TABLE voices`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.cli import main
from bot.errors import LibraryBusy
from bot.store import VoiceLibrary, VoiceStore
from tests.engines import where_of
from tests.sqlite_lock import WriteLock, write_lock_held
from tests.test_store import add


class TableLock:
    """A `psql` session holding `LOCK TABLE voices IN EXCLUSIVE MODE` until released: others may read
    the voices, none may change one."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)  # not autocommit: the lock lasts until the transaction ends
        self.conn.execute("LOCK TABLE voices IN EXCLUSIVE MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


@pytest.fixture
def library(open_test_library) -> VoiceLibrary:
    store = open_test_library()
    add(store, 1, "Ada")
    store.update_settings(1, cooldown_s=5.0)
    store.close()
    return store


@pytest.fixture
def locked(library: VoiceLibrary) -> Iterator[WriteLock | TableLock]:
    if isinstance(library, VoiceStore):
        with write_lock_held(library.data_dir) as lock:
            yield lock
        return
    lock = TableLock(where_of(library))
    try:
        yield lock
    finally:
        lock.release()


def test_a_write_under_another_process_lock_is_busy_and_changes_nothing(open_test_library, locked):
    store = open_test_library(busy_timeout_s=0.3)
    with pytest.raises(LibraryBusy, match="busy") as refused:
        store.rename(1, "Ada", "Grace")
    assert "stayed locked by another process for 0.3 s" in refused.value.admin_message
    assert refused.value.exit_code == 75
    # reads go on meanwhile
    assert [v.name for v in store.list(1)] == ["Ada"]
    assert store.settings(1).cooldown_s == 5.0
    locked.release()
    assert store.rename(1, "Ada", "Grace").name == "Grace"  # the same store writes once it is free


def test_a_write_waiting_for_the_lock_holds_up_no_reader_in_the_process(open_test_library, locked):
    store = open_test_library(busy_timeout_s=120)
    renamed: list[object] = []
    writer = threading.Thread(target=lambda: renamed.append(store.rename(1, "Ada", "Grace")))
    writer.start()
    # The writer is waiting for the other process; this thread's reads answer all the same.
    for _ in range(20):
        assert store.get(1, "Ada").name == "Ada"
        assert store.settings(1).cooldown_s == 5.0
    assert writer.is_alive()
    locked.release()
    writer.join(timeout=60)
    assert [v.name for v in renamed] == ["Grace"]  # type: ignore[attr-defined]


@contextlib.contextmanager
def _sqlite_library_locked(data: Path) -> Iterator[WriteLock]:
    store = VoiceStore(data)
    add(store, 1, "Ada")
    store.close()
    with write_lock_held(data) as lock:
        yield lock


def test_the_cli_says_busy_in_one_line_and_exits_75(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VOICEBOT_DATABASE_URL", raising=False)
    monkeypatch.setattr("bot.store.sqlite.BUSY_TIMEOUT_S", 0.3)
    lib = ["--data-dir", str(tmp_path)]
    with _sqlite_library_locked(tmp_path):
        code = main([*lib, "voice", "rename", "--guild", "1", "--voice", "Ada", "Grace"])
        err = capsys.readouterr().err
        assert code == 75, err
        assert err.count("\n") == 1 and "locked by another process" in err and "nothing was changed" in err
        assert main([*lib, "voices", "--guild", "1"]) == 0  # reading still works
        assert "Ada" in capsys.readouterr().out
