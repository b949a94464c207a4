"""Voice names: look-alikes are one name, every script's letters (with their marks) are allowed."""

from __future__ import annotations

import pytest

from bot.errors import InvalidVoiceName, VoiceNameTaken
from bot.store import VoiceStore, clean_name, name_key
from tests.test_store import add

LOOK_ALIKES = [
    "Аda",  # Cyrillic capital А
    "Ａda",  # fullwidth Ａ
    "𝐀da",  # mathematical bold 𝐀
    "ADA",
    "ａｄａ",  # fullwidth, all of it
    "Αda",  # Greek capital alpha
]


@pytest.fixture
def store(tmp_path):
    s = VoiceStore(tmp_path, max_voices_per_guild=10)
    yield s
    s.close()


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_a_look_alike_of_a_voice_name_is_taken(store, look_alike):
    add(store, 1, "Ada")
    with pytest.raises(VoiceNameTaken, match="“Ada”"):
        add(store, 1, look_alike)
    assert [v.name for v in store.list(1)] == ["Ada"]
    assert store.get(1, look_alike).name == "Ada"  # and it finds the voice it looks like


def test_a_look_alike_rename_is_refused(store):
    add(store, 1, "Ada")
    add(store, 1, "Bob")
    with pytest.raises(VoiceNameTaken):
        store.rename(1, "Bob", "Аda")
    assert store.rename(1, "Ada", "ADA").name == "ADA"  # its own look-alike is fine


def test_look_alikes_are_still_free_in_another_guild(store):
    add(store, 1, "Ada")
    assert add(store, 2, "Аda").name == "Аda"


@pytest.mark.parametrize(
    "name",
    [
        "नमस्ते",  # Devanagari: virama and vowel sign are combining marks
        "مُحَمَّد",  # Arabic with harakat
        "Zoë-Ünal",
        "Ngữ Văn",  # Vietnamese, stacked marks
        "東京_2",
        "Ελένη",
    ],
)
def test_names_in_any_script_with_combining_marks_are_allowed(store, name):
    assert clean_name(name) == name
    assert add(store, 1, name).name == name
    assert store.get(1, name).name == name


@pytest.mark.parametrize("name", ["\u0301abc", "A\u200dda", "Ada\u202e", "Ada\x07", "½"])
def test_marks_alone_invisible_and_control_characters_are_refused(store, name):
    with pytest.raises(InvalidVoiceName):
        add(store, 1, name)


def test_the_key_is_nfkc_casefold_skeleton():
    assert {name_key(n) for n in ["Ada", *LOOK_ALIKES]} == {"ada"}
    assert name_key("0ld") == name_key("Old") == name_key("OLD")  # digit zero looks like O
    assert name_key("Vim") == name_key("Virn")  # UTS #39: "rn" looks like "m"
    assert name_key("Ada") != name_key("Adam")


def test_look_alike_voices_from_before_the_upgrade_are_both_kept_and_reported(tmp_path):
    """A library written before look-alike keys may hold "Ada" and Cyrillic "Аda": keep both, say so."""
    import sqlite_utils

    from bot.config import Config
    from bot.doctor import check_library
    from bot.store import MIGRATIONS

    db = sqlite_utils.Database(tmp_path / "voicebot.db")
    for migrate in MIGRATIONS[:2]:
        migrate(db)
    db.execute("pragma user_version = 2")
    for voice_id, name in [("a" * 16, "Ada"), ("b" * 16, "Аda"), ("c" * 16, "Bob")]:
        db["voices"].insert(
            dict(id=voice_id, guild_id=1, name=name, name_key=name.casefold(), owner_id=7,
                 created_at=f"2025-01-01T00:00:0{len(voice_id)}+00:00", duration_s=6.0, sha256="0" * 64,
                 consent_by=7, consent_at="2025-01-01T00:00:00+00:00", revision="r", source="old")
        )  # fmt: skip
        folder = tmp_path / "voices" / "1" / voice_id
        folder.mkdir(parents=True)
        (folder / "reference.flac").write_bytes(b"fLaC")
        (folder / "latent.npy").write_bytes(b"")
    db.conn.commit()
    db.close()

    store = VoiceStore(tmp_path)
    assert sorted(v.name for v in store.list(1)) == ["Ada", "Bob", "Аda"]  # nothing deleted
    assert store.get(1, "Ada").id == "a" * 16 and store.get(1, "Аda").id == "b" * 16  # exact names
    with pytest.raises(VoiceNameTaken):
        add(store, 1, "𝐀da")
    store.close()
    lines = [line for ok, line in check_library(Config(data_dir=tmp_path)) if not ok]
    assert any("look alike" in line and "“Ada”" in line and "“Аda”" in line for line in lines), lines
