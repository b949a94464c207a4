"""`voicebot migrate --to postgresql://…`: a SQLite library copied whole into PostgreSQL, verified, and
safe to run again or to finish after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest

from bot import migration
from bot.cli import main
from bot.store import VoiceStore
from bot.store.postgres import PostgresVoiceStore


def _call(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path: Path, monkeypatch) -> Path:
    """A SQLite library with two servers' voices and a bit of everything else, API keys included."""
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    store = VoiceStore(tmp_path / "data")
    for guild in (1, 2):
        for i in range(3):
            store.add(
                guild,
                f"Voice {i}",
                owner_id=7,
                reference_flac=f"fLaC-{guild}-{i}".encode() * 100,
                latent=np.full((8, 80), i + guild / 10, np.float16),
                duration_s=6.5,
                revision="echo-1",
                consent_by=7,
                source="upload",
                speaker_id=8 if i == 0 else None,
            )
    store.update_settings(1, cooldown_s=3.0, daily_quota_s=600.0, default_mode="file")
    store.set_default_voice(1, 7, "Voice 1")
    for at in (100.0, 200.0):
        store.record_usage(1, 7, kind="say", audio_seconds=2.5, gpu_seconds=0.5, at=at)
    store.add_pronunciation(1, "GIF", "jif")
    store.set_autoread_channel(1, 55, True)
    store.set_autoread_member(2, 7, True)
    store.set_autoread_ignored_role(2, 66, True)
    store.update_autoread_settings(1, read_bots=True, max_chars=120)
    store.create_api_key(1, created_by=7, name="CI")
    store.create_api_key(2, created_by=0, name="cron")
    store.close()
    return tmp_path / "data"


def _everything(library) -> dict:
    voices = library.all_voices()
    return {
        "voices": voices,
        "latents": [library.load_latent(v).tobytes() for v in voices],
        "references": [library.read_reference(v) for v in voices],
        "settings": [library.settings(g) for g in (1, 2)],
        "default": library.default_voice(1, 7),
        "usage": [library.audio_seconds_since(g, 0) for g in (1, 2)],
        "last_say": library.last_say_at(1, 7),
        "dictionary": library.dictionary(1),
        "api_keys": [library.api_keys(g) for g in (1, 2)],
        "autoread": [
            (
                library.autoread_settings(g),
                library.autoread_channels(g),
                library.autoread_members(g),
                library.autoread_ignored_roles(g),
            )
            for g in (1, 2)
        ],
    }


def test_migrate_copies_everything_and_verifies_it(data, postgres_url, capsys):
    code, out, err = _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url)
    assert code == 0, err
    assert "Copied 6 voices and 2 usage records" in out and "counts and checksums match" in out
    assert "VOICEBOT_DATABASE_URL=" in out
    source, target = VoiceStore(data, read_only=True), PostgresVoiceStore(postgres_url)
    try:
        assert _everything(target) == _everything(source)
        target.record_usage(
            1, 7, kind="say", audio_seconds=1.0, gpu_seconds=0.0
        )  # ids continue after the copy's
        assert target.audio_seconds_since(1, 0) == 6.0
    finally:
        source.close()
        target.close()


def test_migrate_again_copies_nothing_twice_and_picks_up_what_changed(data, postgres_url, capsys):
    assert _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url)[0] == 0
    source = VoiceStore(data)
    source.update_settings(2, cooldown_s=9.0)  # changed since the first run
    source.close()
    code, out, err = _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (
        report["voices_copied"] == 0 and report["voices_already_there"] == 6 and report["usage_copied"] == 0
    )
    assert report["verified_rows"]["voices"] == 6 and report["verified_rows"]["usage"] == 2
    assert report["verified_rows"]["api_keys"] == 2
    target = PostgresVoiceStore(postgres_url)
    assert target.count(1) == 3 and target.settings(2).cooldown_s == 9.0
    target.close()


def test_an_interrupted_migrate_finishes_when_run_again(data, postgres_url, capsys, monkeypatch):
    copy_voice = migration._copy_voice
    copied: list[str] = []

    def dies_after_two(source, target, voice):
        if len(copied) == 2:
            raise KeyboardInterrupt  # Ctrl-C, or the machine going down, mid-way
        copied.append(voice.id)
        return copy_voice(source, target, voice)

    monkeypatch.setattr(migration, "_copy_voice", dies_after_two)
    interrupted = _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url)
    assert interrupted[0] == 130 and len(copied) == 2
    monkeypatch.undo()
    code, out, err = _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url)
    assert code == 0, err
    assert "Copied 4 voices (2 were there from an earlier run)" in out
    source, target = VoiceStore(data, read_only=True), PostgresVoiceStore(postgres_url)
    assert _everything(target) == _everything(source)
    source.close()
    target.close()


def test_a_database_holding_other_voices_is_refused_before_anything_is_copied(data, postgres_url, capsys):
    other = PostgresVoiceStore(postgres_url)
    other.add(
        9,
        "Stranger",
        owner_id=1,
        reference_flac=b"x",
        latent=np.zeros((8, 80), np.float16),
        duration_s=6,
        revision="r",
        consent_by=1,
        source="upload",
    )
    other.close()
    code, _out, err = _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url)
    assert code == 2 and err.count("\n") == 1 and "use an empty database" in err, err
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM voices").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM usage").fetchone() == (0,)


def test_verify_names_what_differs(data, postgres_url, capsys):
    assert _call(capsys, "--data-dir", str(data), "migrate", "--to", postgres_url)[0] == 0
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        voice_id = conn.execute("SELECT voice_id FROM voice_files LIMIT 1").fetchone()[0]
        conn.execute("UPDATE voice_files SET latent = 'garbled'::bytea WHERE voice_id = %s", [voice_id])
        conn.execute("DELETE FROM usage WHERE id = (SELECT min(id) FROM usage)")
        conn.execute("DELETE FROM api_keys WHERE name = 'cron'")
    source, target = VoiceStore(data, read_only=True), PostgresVoiceStore(postgres_url)
    try:
        with pytest.raises(migration.MigrationMismatch) as caught:
            migration.verify(source, target, source.all_voices())
    finally:
        source.close()
        target.close()
    assert "usage: 2 rows here, 1 there" in caught.value.admin_message
    assert "api_keys: 2 rows here, 1 there" in caught.value.admin_message
    assert f"voice {voice_id}: its recording or latent differs" in caught.value.admin_message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["migrate", "--to", "sqlite:///x.db"], "is not a PostgreSQL URL"),
        (["migrate"], "--to"),
    ],
)
def test_a_bad_target_is_one_line_and_exit_2(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _out, err = _call(capsys, *argv)
    assert code == 2 and expected in err, err


def test_nothing_to_migrate_says_so(tmp_path, monkeypatch, capsys, postgres_url):
    monkeypatch.chdir(tmp_path)
    code, _out, err = _call(capsys, "--data-dir", str(tmp_path / "empty"), "migrate", "--to", postgres_url)
    assert code == 2 and "no library" in err and err.count("\n") == 1, err
