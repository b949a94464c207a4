"""Rows holding values of the wrong type (a hand edit in `sqlite3`, a damaged copy) are named, never a
traceback: a bad voice is left out of lists, a bad settings row is refused, doctor lists them all."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from bot.cli import main
from bot.cli.doctor import check_library
from bot.config import Config
from bot.errors import LibraryDamaged
from bot.store import VoiceStore


@pytest.fixture
def library(tmp_path):
    store = VoiceStore(tmp_path)
    for name in ("Ada", "Bob"):
        store.add(
            1,
            name,
            owner_id=7,
            reference_flac=b"fLaC",
            latent=np.ones((8, 80), dtype=np.float16),
            duration_s=6.0,
            revision="r",
            consent_by=7,
            source="test",
        )
    store.update_settings(1, cooldown_s=30.0)
    store.record_usage(1, 7, kind="say", audio_seconds=2.0, gpu_seconds=0.1)
    store.close()
    conn = sqlite3.connect(tmp_path / "voicebot.db")
    conn.execute("update voices set duration_s = 'abc' where name = 'Bob'")
    conn.execute("update guild_settings set cooldown_s = 'soon' where guild_id = 1")
    conn.execute(
        "insert into usage (guild_id, user_id, at, kind, audio_seconds) values (1, 7, 'x', 'say', 1)"
    )
    conn.commit()
    conn.close()
    return tmp_path


def test_the_store_leaves_out_or_refuses_rows_of_the_wrong_type(library):
    store = VoiceStore(library)
    try:
        assert [v.name for v in store.list(1)] == ["Ada"]
        with pytest.raises(LibraryDamaged) as bad_voice:
            store.get(1, "Bob")
        assert "duration_s holds 'abc', not a number" in bad_voice.value.admin_message
        with pytest.raises(LibraryDamaged) as bad_settings:
            store.settings(1)
        assert "cooldown_s holds 'soon'" in bad_settings.value.admin_message
        assert isinstance(store.last_say_at(1, 7), float)  # the text 'x' is not the latest time
    finally:
        store.close()


def test_the_cli_names_the_row_in_one_line(library, capsys, caplog):
    lib = ["--data-dir", str(library)]
    assert main([*lib, "voices", "--guild", "1"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == ["Ada"] and "left out: duration_s holds 'abc'" in caplog.text
    assert main([*lib, "voice", "info", "--guild", "1", "--voice", "Bob"]) == 65
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "duration_s holds 'abc'" in err and "Traceback" not in err
    assert main([*lib, "settings", "--guild", "1"]) == 65
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "guild_settings of guild 1: cooldown_s holds 'soon'" in err


def test_doctor_lists_every_row_of_the_wrong_type(library):
    lines = [line for ok, line in check_library(Config(data_dir=library)) if not ok]
    assert any("table voices" in line and "duration_s holds 'abc'" in line for line in lines), lines
    assert any("table guild_settings" in line and "cooldown_s holds 'soon'" in line for line in lines)
    assert any("table usage" in line and "at holds 'x'" in line for line in lines)
