"""Voice names: look-alikes are one name, every script's letters (with their marks) are allowed."""

from __future__ import annotations

import pytest

from bot.errors import InvalidVoiceName, VoiceNameTaken
from bot.names import is_invisible, key_of
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

# Characters that render as nothing, yet are letters (Lo) or combining marks (Mn) that names once allowed.
INVISIBLE = [
    "\u034f",  # combining grapheme joiner
    "\ufe00",  # variation selector-1
    "\ufe0f",  # variation selector-16
    "\U000e0100",  # variation selector-17
    "\U000e01ef",  # variation selector-256
    "\u180b",  # Mongolian free variation selector one
    "\u180c",
    "\u180d",
    "\u180e",  # Mongolian vowel separator
    "\u180f",  # Mongolian free variation selector four
    "\u17b4",  # Khmer inherent vowels
    "\u17b5",
    "\u115f",  # Hangul choseong filler
    "\u1160",  # Hangul jungseong filler
    "\u3164",  # Hangul filler
    "\uffa0",  # halfwidth Hangul filler
    "\U00016fe4",  # Khitan small script filler: not default-ignorable, as blank
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
        "སྒྲུབ",  # Tibetan: three stacked marks
        "שִּׁ֖ם",  # Hebrew: dagesh, shin dot, hiriq and a cantillation mark on one letter
        "ကျော်",  # Burmese: spacing vowel signs, then a mark
    ],
)
def test_names_in_any_script_with_combining_marks_are_allowed(store, name):
    assert clean_name(name) == name
    assert add(store, 1, name).name == name
    assert store.get(1, name).name == name


@pytest.mark.parametrize(
    "name", ["\u0301abc", "A\u200dda", "Ada\u202e", "Ada\x07", "½", "Ada\u2800", "A\U0001d159da"]
)
def test_marks_alone_invisible_and_control_characters_are_refused(store, name):
    with pytest.raises(InvalidVoiceName):
        add(store, 1, name)


@pytest.mark.parametrize("where", ["A{}da", "Ada{}"])
@pytest.mark.parametrize("invisible", INVISIBLE)
def test_an_invisible_character_inside_or_at_the_end_of_a_name_is_refused(invisible, where):
    with pytest.raises(InvalidVoiceName, match="can't be a voice name"):
        clean_name(where.format(invisible))


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_an_invisible_character_does_not_change_the_key(invisible):
    assert key_of(f"A{invisible}da") == key_of(f"Ada{invisible}") == key_of("Ada") == "ada"


def test_what_an_invisible_character_kept_apart_is_keyed_as_its_visible_twin():
    assert key_of("Zoe\u034f\u0308") == key_of("Zoë")  # the joiner blocked e + diaeresis composing
    assert key_of("Ada \u2060 Lovelace") == key_of("Ada Lovelace")  # two spaces once it's gone


def test_the_invisible_characters_are_unicodes_default_ignorables_and_the_khitan_filler():
    # DerivedCoreProperties.txt: "Total code points: 4174", all in planes 0, 1 and 14.
    planes = [*range(0x20000), *range(0xE0000, 0xE1000)]
    assert sum(is_invisible(chr(code)) for code in planes) == 4174 + 1
    assert not any(is_invisible(c) for c in "Ada \u00a0-_ \u0301\u1161\u3165\U000e1000")


def test_an_invisible_twin_of_a_voice_name_is_refused_and_finds_that_voice(store):
    add(store, 1, "Ada")
    add(store, 1, "Bob")
    with pytest.raises(InvalidVoiceName):
        add(store, 1, "Ada\u034f")
    with pytest.raises(InvalidVoiceName):
        store.rename(1, "Bob", "A\u3164da")
    assert sorted(v.name for v in store.list(1)) == ["Ada", "Bob"]
    assert store.get(1, "A\ufe0fda").name == "Ada"


@pytest.mark.parametrize(
    "name",
    [
        "Ada" + "\u0301" * 6,  # NFC makes the first one á; five stay stacked on it
        "Ab\u0300\u0301\u0302\u0303\u0304a",
        "Zalgo" + "\u0489" * 27,  # enclosing marks (Me) stack too
    ],
)
def test_more_than_four_marks_on_one_letter_are_refused(name):
    with pytest.raises(InvalidVoiceName):
        clean_name(name)


def test_the_key_is_nfkc_casefold_skeleton():
    assert {name_key(n) for n in ["Ada", *LOOK_ALIKES]} == {"ada"}
    assert name_key("0ld") == name_key("Old") == name_key("OLD")  # digit zero looks like O
    assert name_key("Vim") == name_key("Virn")  # UTS #39: "rn" looks like "m"
    assert name_key("Ada") != name_key("Adam")


def _library_from_version_2(data_dir, names):
    """A library written before look-alike keys (schema version 2): voices "a…", "b…", … in guild 1."""
    import sqlite_utils

    from bot.store import MIGRATIONS

    db = sqlite_utils.Database(data_dir / "voicebot.db")
    for migrate in MIGRATIONS[:2]:
        migrate(db)
    db.execute("pragma user_version = 2")
    for letter, name in zip("abcdef", names, strict=False):
        voice_id = letter * 16
        db["voices"].insert(
            dict(id=voice_id, guild_id=1, name=name, name_key=name.casefold(), owner_id=7,
                 created_at=f"2025-01-01T00:00:0{len(voice_id)}+00:00", duration_s=6.0, sha256="0" * 64,
                 consent_by=7, consent_at="2025-01-01T00:00:00+00:00", revision="r", source="old")
        )  # fmt: skip
        folder = data_dir / "voices" / "1" / voice_id
        folder.mkdir(parents=True)
        (folder / "reference.flac").write_bytes(b"fLaC")
        (folder / "latent.npy").write_bytes(b"")
    db.conn.commit()
    db.close()


def _look_alike_reports(data_dir):
    from bot.cli.doctor import check_library
    from bot.config import Config

    return [line for ok, line in check_library(Config(data_dir=data_dir)) if not ok and "look alike" in line]


def test_look_alike_voices_from_before_the_upgrade_are_both_kept_and_reported(tmp_path):
    """A library written before look-alike keys may hold "Ada" and Cyrillic "Аda": keep both, say so."""
    _library_from_version_2(tmp_path, ["Ada", "Аda", "Bob"])

    store = VoiceStore(tmp_path)
    assert sorted(v.name for v in store.list(1)) == ["Ada", "Bob", "Аda"]  # nothing deleted
    assert store.get(1, "Ada").id == "a" * 16 and store.get(1, "Аda").id == "b" * 16  # exact names
    with pytest.raises(VoiceNameTaken):
        add(store, 1, "𝐀da")
    store.close()
    lines = _look_alike_reports(tmp_path)
    assert any("“Ada”" in line and "“Аda”" in line for line in lines), lines


def test_a_stored_name_with_an_invisible_character_is_its_visible_twin(tmp_path):
    """Names stored before invisible characters were refused: each is kept, and is one name with its twin."""
    _library_from_version_2(tmp_path, ["Ada\u034f", "Bob", "B\u180bob", "A\u3164l"])

    store = VoiceStore(tmp_path)
    assert len(store.list(1)) == 4  # nothing deleted
    assert store.get(1, "Ada").id == "a" * 16  # its visible twin finds it
    assert store.get(1, "Bob").id == "b" * 16 and store.get(1, "B\u180bob").id == "c" * 16  # exact names
    with pytest.raises(VoiceNameTaken):
        add(store, 1, "Ada")
    with pytest.raises(VoiceNameTaken):
        store.rename(1, "Bob", "Al")
    store.close()
    lines = _look_alike_reports(tmp_path)
    assert any("“Bob”" in line and "“B\u180bob”" in line for line in lines), lines
