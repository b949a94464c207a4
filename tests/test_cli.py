"""`voicebot` as an admin uses it, on the tiny model: round trip, bad input, guild isolation."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import av
import mutagen
import numpy as np
import pytest

from bot.cli import main
from tests import media

GOOD_CLIP = media.encode(media.speech_like(7.0), "voice-message")
SPEECH_COMMANDS = ("clone", "say", "doctor")  # the commands offered --backend/--weights/--device


@pytest.fixture
def run(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """Run `voicebot ARGS` in-process with the local backend on the tiny model; (code, out, err)."""
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout

    def invoke(*args: str, backend: bool = True) -> tuple[int, str, str]:
        extra = ["--data-dir", str(tmp_path / "data")]
        if backend and args[0] in SPEECH_COMMANDS:
            extra += ["--backend", "local", "--weights", str(tiny_model_dir), "--device", "cpu"]
        if args[0] == "clone" and "--consent" not in args:
            extra += ["--consent", "7"]
        try:
            code = main([args[0], *extra, *args[1:]])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def library(tmp_path: Path) -> tuple[set[str], list[tuple]]:
    """What the library holds: files under voices/, and the voice rows."""
    data = tmp_path / "data"
    files = {str(p.relative_to(data)) for p in (data / "voices").rglob("*")} if data.exists() else set()
    rows = []
    if (data / "voicebot.db").exists():
        conn = sqlite3.connect(data / "voicebot.db")
        rows = conn.execute("select guild_id, name, id from voices order by id").fetchall()
        conn.close()
    return files, rows


def test_clone_list_say_delete_round_trip(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    code, out, err = run("clone", "--guild", "1", "--name", "Ada", "--consent", "42", str(clip))
    assert (code, err) == (0, "") and "Cloned “Ada” in guild 1 from ogg/opus, 7.0 s" in out

    code, out, _ = run("voices", "--guild", "1", "--json", backend=False)
    (voice,) = json.loads(out)
    assert (voice["name"], voice["guild_id"], voice["owner_id"], voice["consent_by"]) == ("Ada", 1, 42, 42)
    assert voice["revision"].startswith("echo-") and voice["duration_s"] == pytest.approx(7.0, abs=0.05)

    out_file = tmp_path / "out" / "hello.ogg"
    out_file.parent.mkdir()
    code, out, err = run(
        "say",
        "--guild",
        "1",
        "--voice",
        "ada",
        "--out",
        str(out_file),
        "--seed",
        "5",
        "Hello there. This is a test.",
    )
    assert (code, err) == (0, "") and f"voice to {out_file} " in out and "seed 5" in out
    container = av.open(str(out_file))
    stream = container.streams.audio[0]
    assert (stream.codec_context.name, stream.rate) == ("opus", 48000)
    seconds = float(container.duration / 1e6)
    container.close()
    assert 0.5 < seconds < 31  # the tiny model babbles up to one full 29.7 s generation
    tags = mutagen.File(out_file).tags
    assert tags["artist"] == ["Ada"] and tags["license"] == ["CC-BY-NC-SA-4.0"]
    assert tags["comment"] == ["AI-generated speech (Echo-TTS)"] and tags["title"][0].startswith("Hello")
    assert out_file.stat().st_mode & 0o044  # a normal, readable file

    usage = (
        sqlite3.connect(tmp_path / "data" / "voicebot.db")
        .execute("select guild_id, kind, audio_seconds from usage")
        .fetchall()
    )
    assert usage == [(1, "say", pytest.approx(seconds, abs=0.1))]

    code, out, _ = run("delete", "--guild", "1", "--voice", "ADA", backend=False)
    assert code == 0 and "Deleted “Ada”" in out
    assert library(tmp_path) == ({"voices/1", "voices/.staging"}, [])


def test_mp3_and_wav_outputs_and_same_seed_same_audio(run, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(media.encode(media.speech_like(6.0), "wav"))
    assert run("clone", "--guild", "3", "--name", "Bo", str(clip))[0] == 0
    for name in ("a.wav", "b.wav", "c.mp3"):
        code, _, err = run(
            "say",
            "--guild",
            "3",
            "--voice",
            "Bo",
            "--out",
            str(tmp_path / name),
            "--seed",
            "9",
            "Same words.",
        )
        assert (code, err) == (0, "")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert mutagen.File(tmp_path / "c.mp3").tags["TPE1"].text == ["Bo"]


def test_a_voice_is_invisible_to_other_guilds(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    assert json.loads(run("voices", "--guild", "2", "--json", backend=False)[1]) == []
    code, _, err = run("say", "--guild", "2", "--voice", "Ada", "--out", str(tmp_path / "x.ogg"), "Hi.")
    assert code == 2 and "no voice called “Ada”" in err and not (tmp_path / "x.ogg").exists()
    voice_id = library(tmp_path)[1][0][2]
    code, _, err = run("say", "--guild", "2", "--voice", voice_id, "--out", str(tmp_path / "x.ogg"), "Hi.")
    assert code == 2 and not (tmp_path / "x.ogg").exists()  # nor by its id
    assert run("delete", "--guild", "2", "--voice", "Ada", backend=False)[0] == 2
    assert len(library(tmp_path)[1]) == 1


def _bad_inputs(tmp: Path) -> list[tuple[str, list[str], str]]:
    def clip(name: str, data: bytes) -> str:
        (tmp / name).write_bytes(data)
        return str(tmp / name)

    out = str(tmp / "out.ogg")
    return [
        (
            "a folder for a file",
            ["clone", "--guild", "1", "--name", "X", str(tmp)],
            "is a folder, not a file",
        ),
        (
            "not audio",
            ["clone", "--guild", "1", "--name", "X", clip("notes.txt", b"plain text, not audio " * 400)],
            "Use a recording as WAV",
        ),
        (
            "missing file",
            ["clone", "--guild", "1", "--name", "X", str(tmp / "nope.wav")],
            "nope.wav does not exist: give the recording's path",
        ),
        (
            "bad name",
            ["clone", "--guild", "1", "--name", "Ada!", clip("a.ogg", GOOD_CLIP)],
            "1 to 32 letters",
        ),
        ("long name", ["clone", "--guild", "1", "--name", "x" * 33, clip("b.ogg", GOOD_CLIP)], "1 to 32"),
        ("taken name", ["clone", "--guild", "1", "--name", "KEPT", clip("c.ogg", GOOD_CLIP)], "already has"),
        (
            "png",
            ["clone", "--guild", "1", "--name", "X", clip("p.ogg", b"\x89PNG\r\n\x1a\n" + bytes(64))],
            "not audio (it looks like a PNG image)",
        ),
        (
            "text",
            ["clone", "--guild", "1", "--name", "X", clip("t.mp3", b"hello, I am text\n" * 20)],
            "not audio",
        ),
        (
            "too short",
            [
                "clone",
                "--guild",
                "1",
                "--name",
                "X",
                clip("s.wav", media.encode(media.speech_like(3.0), "wav")),
            ],
            "3.0 s long",
        ),
        (
            "silent",
            [
                "clone",
                "--guild",
                "1",
                "--name",
                "X",
                clip("q.wav", media.encode(np.zeros(44100 * 6, np.float32), "wav")),
            ],
            "silent",
        ),
        (
            "too long",
            [
                "clone",
                "--guild",
                "1",
                "--name",
                "X",
                clip("l.ogg", media.encode(media.speech_like(310.0), "ogg-opus")),
            ],
            "5 min 10 s",
        ),
        (
            "truncated",
            ["clone", "--guild", "1", "--name", "X", clip("tr.ogg", GOOD_CLIP[:300])],
            "damaged or truncated",
        ),
        (
            "unknown voice",
            ["say", "--guild", "1", "--voice", "Nobody", "--out", out, "Hi."],
            "no voice called",
        ),
        (
            "text too long",
            ["say", "--guild", "1", "--voice", "Kept", "--out", out, "a" * 2001],
            "2,001 characters long; the limit (VOICEBOT_MAX_TEXT_CHARS) is 2,000. Shorten it or say it in",
        ),
        (
            "nothing to say",
            ["say", "--guild", "1", "--voice", "Kept", "--out", out, "  ** ~~ **"],
            "nothing speakable",
        ),
        (
            "bad format",
            ["say", "--guild", "1", "--voice", "Kept", "--out", str(tmp / "o.xyz"), "Hi."],
            "end --out in .ogg, .mp3 or .wav",
        ),
        ("delete unknown", ["delete", "--guild", "1", "--voice", "Nobody"], "no voice called"),
        ("no guild", ["voices", "--json"], "--guild"),
        ("guild not a number", ["voices", "--guild", "one"], "'one' is not a guild id"),
        ("guild zero", ["voices", "--guild", "0"], "0 is not a guild id"),
        ("negative guild", ["delete", "--guild", "-5", "--voice", "A"], "-5 is not a guild id"),
        ("guild past SQLite's integers", ["voices", "--guild", str(2**63)], f"{2**63} is not a guild id"),
        (
            "user past SQLite's integers",
            ["voice", "default", "--guild", "1", "--voice", "A", "--user", str(2**64 - 1)],
            "is not a Discord user id",
        ),
        ("role not a number", ["settings", "--guild", "1", "--clone-role", "abc"], "'abc' is not a role id"),
        ("unknown command", ["frobnicate"], "invalid choice"),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, tmp_path):
    clip = tmp_path / "kept.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Kept", str(clip))[0] == 0
    cases = _bad_inputs(tmp_path)
    assert len(cases) >= 15
    for label, args, expected in cases:
        before = library(tmp_path)
        code, _, err = run(*args)
        assert code == 2, label
        assert library(tmp_path) == before, label
        assert not (tmp_path / "out.ogg").exists() and not (tmp_path / "o.xyz").exists(), label
        assert err.count("\n") == 1 and err.startswith("voicebot: "), (label, err)
        assert expected in err, (label, err)


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["voices", "--json"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "--guild" in err and err.startswith("voicebot: ")


def test_a_fresh_data_dir_is_not_created_by_bad_input(run, tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert run("clone", "--guild", "1", "--name", "X", str(png))[0] == 2
    assert run("say", "--guild", "1", "--voice", "X", "--out", str(tmp_path / "o.ogg"), "Hi.")[0] == 2
    assert not (tmp_path / "data").exists()


def test_local_backend_without_weights_is_a_config_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECHO_WEIGHTS_DIR", raising=False)
    code = main(["say", "--backend", "local", "--guild", "1", "--voice", "A", "--out", "o.ogg", "Hi"])
    err = capsys.readouterr().err
    assert code == 2 and "needs a weights folder" in err and err.count("\n") == 1


def test_doctor_reports_what_to_fix(run, tmp_path, monkeypatch):
    code, out, _ = run("doctor")
    assert code == 0 and "All good." in out  # no Discord token: worth a note, not a failure
    assert "note DISCORD_TOKEN is not set: fine for the terminal commands" in out
    assert "ok   Speech backend (local) answers: model echo-" in out
    monkeypatch.setenv("DISCORD_TOKEN", "x" * 10)
    monkeypatch.setenv("VOICEBOT_DISCORD_API_BASE", "http://127.0.0.1:9/api/v10")  # a closed port
    code, out, _ = run("doctor")
    assert code == 1 and "FIX  Can't reach Discord at http://127.0.0.1:9/api/v10" in out
    assert "x" * 10 not in out  # the token is never printed
    assert "1 problem to fix: see the FIX lines above." in out

    monkeypatch.delenv("DISCORD_TOKEN")
    code, out, _ = run("doctor", "--weights", str(tmp_path / "empty"))
    assert code == 1 and f"FIX  The weights folder {tmp_path / 'empty'} doesn't exist." in out
    assert f"fix: fill it with `voicebot weights fetch {tmp_path / 'empty'}`." in out

    code, out, _ = run("doctor", "--json")
    statuses = {item["status"] for item in json.loads(out)}
    assert code == 0 and statuses == {"ok", "note"}


# --- a damaged, full or read-only library: one line and an exit code each, never a traceback -------


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("voicebot: ") and "Traceback" not in err


def _clone_ada(run, tmp_path: Path) -> Path:
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    return clip


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_database_is_one_line_from_every_command(run, tmp_path, monkeypatch, damage):
    clip = _clone_ada(run, tmp_path)
    db = tmp_path / "data" / "voicebot.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 200)
    else:
        os.truncate(db, db.stat().st_size // 2)
    out_file = tmp_path / "x.ogg"
    for args in (
        ["voices", "--guild", "1"],
        ["say", "--guild", "1", "--voice", "Ada", "--out", str(out_file), "Hi."],
        ["delete", "--guild", "1", "--voice", "Ada"],
        ["clone", "--guild", "1", "--name", "Bo", str(clip)],
    ):
        code, _, err = run(*args)
        assert code == 65 and _one_line(err), (args, code, err)
        assert str(db) in err and "backup" in err, err
    assert not out_file.exists()

    code, out, err = run("doctor")
    assert code == 1 and err == ""
    assert [line for line in out.splitlines() if str(db) in line and line.startswith("FIX  ")], out

    monkeypatch.setenv("DISCORD_TOKEN", "x" * 20)
    monkeypatch.setenv("VOICEBOT_DISCORD_API_BASE", "http://127.0.0.1:9/api/v10")  # never the real one
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")  # a speech setup that passes, so the library speaks
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    code, _, err = run("run", backend=False)
    assert code == 65 and _one_line(err) and str(db) in err, err


def test_a_full_disk_while_cloning_is_one_line_and_leaves_nothing(run, tmp_path, monkeypatch):
    clip = _clone_ada(run, tmp_path)
    before = library(tmp_path)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", no_space)  # where a full disk shows up for delayed allocation
        code, _, err = run("clone", "--guild", "1", "--name", "Bo", str(clip))
    assert code == 74 and _one_line(err) and "space" in err and str(tmp_path / "data") in err, err
    assert library(tmp_path) == before


def test_a_read_only_library_is_one_line_and_leaves_nothing(run, tmp_path, monkeypatch):
    clip = _clone_ada(run, tmp_path)
    before = library(tmp_path)
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        if str(tmp_path / "data") in os.fsdecode(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "mkdir", read_only)  # tests run as root, whom chmod does not stop
        code, _, err = run("clone", "--guild", "1", "--name", "Bo", str(clip))
    assert code == 77 and _one_line(err) and "read-only" in err and str(tmp_path / "data") in err, err
    assert library(tmp_path) == before


def test_a_read_only_database_is_one_line_and_deletes_nothing(run, tmp_path, monkeypatch):
    _clone_ada(run, tmp_path)
    before = library(tmp_path)
    real_connect = sqlite3.connect

    def read_only(database, *args, **kwargs):
        return real_connect(f"file:{database}?mode=ro", *args, **{**kwargs, "uri": True})

    with monkeypatch.context() as patch:
        patch.setattr(sqlite3, "connect", read_only)
        code, _, err = run("delete", "--guild", "1", "--voice", "Ada", backend=False)
    assert code == 77 and _one_line(err) and "read-only" in err, err
    assert library(tmp_path) == before


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "a-missing-folder"])
def test_an_unwritable_out_path_is_one_line_and_costs_no_speech(run, tmp_path, where):
    _clone_ada(run, tmp_path)
    if where == "a-missing-folder":
        out_file = tmp_path / "typo" / "hi.ogg"
    elif where == "under-a-file":
        (tmp_path / "notes.txt").write_text("a file, not a folder")
        out_file = tmp_path / "notes.txt" / "hi.ogg"
    else:
        out_file = tmp_path / "folder.ogg"
        out_file.mkdir()
    code, _, err = run("say", "--guild", "1", "--voice", "Ada", "--out", str(out_file), "Hi.")
    assert code == 73 and _one_line(err) and str(out_file) in err, err
    conn = sqlite3.connect(tmp_path / "data" / "voicebot.db")
    assert conn.execute("select count(*) from usage").fetchone()[0] == 0  # refused before synthesis
    conn.close()
    assert not list(tmp_path.rglob("*.part")) and not (tmp_path / "typo").exists()


def test_a_garbled_latent_is_one_line_naming_the_repair(run, tmp_path):
    _clone_ada(run, tmp_path)
    (latent,) = (tmp_path / "data" / "voices" / "1").glob("*/latent.npy")
    latent.write_bytes(b"\x93NUMPY garbled")
    out_file = tmp_path / "x.ogg"
    code, _, err = run("say", "--guild", "1", "--voice", "Ada", "--out", str(out_file), "Hi.")
    assert code == 66 and _one_line(err) and "“Ada”" in err and "voicebot doctor --repair" in err, err
    assert not out_file.exists()


def test_the_dictionary_from_a_terminal(run):
    assert run("dictionary", "list", "--guild", "1", backend=False)[0] == 0
    code, out, _ = run("dictionary", "add", "--guild", "1", "SQL", "sequel", backend=False)
    assert code == 0 and "“SQL” as “sequel”" in out
    code, out, _ = run("dictionary", "list", "--guild", "1", backend=False)
    assert out == "SQL\tsequel\n"
    code, _, err = run("dictionary", "add", "--guild", "1", "x", "[S2] y", backend=False)
    assert code == 2 and err.count("\n") == 1 and "speaker tag" in err
    code, _, err = run("dictionary", "add", "--guild", "1", "lonely", backend=False)
    assert code == 2 and "spoken_as" in err
    assert run("dictionary", "remove", "--guild", "1", "sql", backend=False)[0] == 0
    assert run("dictionary", "list", "--guild", "1", backend=False)[1].startswith(
        "Guild 1 has no pronunciations."
    )
    code, _, err = run("dictionary", "remove", "--guild", "1", "sql", backend=False)
    assert (code, err) == (
        2,
        "voicebot: Guild 1's dictionary has no entry for “sql”. "
        "See it with `voicebot dictionary list --guild 1`.\n",
    )


def test_doctor_names_a_missing_weights_folder_for_the_local_backend(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("ECHO_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("VOICEBOT_BACKEND", "local")
    code = main(["doctor", "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert code == 1 and "FIX  The local backend needs a weights folder" in out


@pytest.mark.parametrize("problem", ["empty weights folder", "weights path is a file", "no such GPU"])
def test_a_local_engine_that_cannot_start_is_one_line_naming_the_fix(run, tmp_path, problem):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not weights")
    override, expected = {
        "empty weights folder": (["--weights", str(tmp_path / "empty")], "holds no weights: fill it with"),
        "weights path is a file": (["--weights", str(tmp_path / "notes.txt")], "is a file: point"),
        "no such GPU": (["--device", "cuda:99"], "Device cuda:99 was asked for, but torch sees"),
    }[problem]
    # the last --weights/--device wins: the fixture's own come first
    code, _, err = run("clone", "--guild", "1", "--name", "Ada", *override, str(clip))
    assert code == 2 and _one_line(err) and expected in err, err  # a setup to fix, as a bad setting is
    assert "voicebot weights fetch" in err or "--device cpu" in err
    assert library(tmp_path) == (set(), [])
    code, out, _ = run("doctor", *override)
    # doctor says the same words, the fix on a line of its own
    what, fix = err.removeprefix("voicebot: ").strip().split(": ", 1)
    assert code == 1 and f"FIX  {what}.\n       fix: {fix}\n" in out, out


def test_doctor_reports_a_bad_backend_name_and_an_unreachable_modal(run, monkeypatch):
    monkeypatch.setenv("VOICEBOT_BACKEND", "gpu")
    code, out, _ = run("doctor", backend=False)
    fix_it = "FIX  VOICEBOT_BACKEND is 'gpu'.\n       fix: set it to modal or local in .env."
    assert code == 1 and fix_it in out
    assert "ok   Configuration loaded" not in out  # not "ok" first, then FIX for the same setting

    monkeypatch.setenv("VOICEBOT_BACKEND", "modal")
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("MODAL_SERVER_URL", "https://127.0.0.1:9,https://127.0.0.1:10")  # a closed port
    code, out, _ = run("doctor", backend=False)
    assert code == 1 and "FIX  Can't reach Modal at 127.0.0.1 (" in out
