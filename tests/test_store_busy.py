"""Another process holding the library's write lock (a backup, an `sqlite3` shell, another voicebot):
readers go on, a write waits at most its busy timeout and then says "busy, try again", nobody freezes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import LibraryBusy
from bot.store import VoiceStore
from tests.sqlite_lock import WriteLock, write_lock_held
from tests.test_store import add


@pytest.fixture
def library(tmp_path: Path) -> Path:
    store = VoiceStore(tmp_path)
    add(store, 1, "Ada")
    store.update_settings(1, cooldown_s=5.0)
    store.close()
    return tmp_path


@pytest.fixture
def locked(library: Path) -> Iterator[WriteLock]:
    with write_lock_held(library) as lock:
        yield lock


def test_a_write_under_another_process_lock_is_busy_and_changes_nothing(library, locked):
    store = VoiceStore(library, busy_timeout_s=0.3)
    try:
        with pytest.raises(LibraryBusy, match="busy") as refused:
            store.rename(1, "Ada", "Grace")
        assert "stayed locked by another process for 0.3 s" in refused.value.admin_message
        assert refused.value.exit_code == 75
        # reads go on meanwhile
        assert [v.name for v in store.list(1)] == ["Ada"]
        assert store.settings(1).cooldown_s == 5.0
        locked.release()
        assert store.rename(1, "Ada", "Grace").name == "Grace"  # the same store writes once it is free
    finally:
        store.close()


def test_a_write_waiting_for_the_lock_holds_up_no_reader_in_the_process(library, locked):
    store = VoiceStore(library, busy_timeout_s=120)
    try:
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
    finally:
        store.close()


def test_the_cli_says_busy_in_one_line_and_exits_75(library, locked, capsys, monkeypatch):
    monkeypatch.setattr("bot.store.sqlite.BUSY_TIMEOUT_S", 0.3)
    code = main(["--data-dir", str(library), "voice", "rename", "--guild", "1", "--voice", "Ada", "Grace"])
    err = capsys.readouterr().err
    assert code == 75, err
    assert err.count("\n") == 1 and "locked by another process" in err and "nothing was changed" in err
    assert main(["--data-dir", str(library), "voices", "--guild", "1"]) == 0  # reading still works
    assert "Ada" in capsys.readouterr().out
