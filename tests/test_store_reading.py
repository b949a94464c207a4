"""The dictionary and auto-read settings as the library keeps them, per server, on both engines."""

from __future__ import annotations

import pytest

from bot.errors import DictionaryEntryNotFound, DictionaryFull, InvalidDictionaryEntry
from bot.store import AutoReadSettings


@pytest.fixture
def store(open_test_library):
    return open_test_library()


def test_dictionary_entries_are_per_server_replaced_by_word_and_removed(store):
    assert store.add_pronunciation(1, "GIF", "jiff") == ("GIF", "jiff", None)
    # the same word, any case: replaced, and what it was said as before is told
    assert store.add_pronunciation(1, "gif", "giff") == ("gif", "giff", "jiff")
    store.add_pronunciation(1, "SQL", "sequel")
    store.add_pronunciation(2, "gif", "gift")
    assert store.dictionary(1) == {"gif": "giff", "SQL": "sequel"}
    assert store.dictionary(2) == {"gif": "gift"}
    assert store.remove_pronunciation(1, "Gif") == "gif"
    assert store.dictionary(1) == {"SQL": "sequel"}
    with pytest.raises(DictionaryEntryNotFound, match="no entry for “gif”"):
        store.remove_pronunciation(1, "gif")
    with pytest.raises(InvalidDictionaryEntry, match="markup"):
        store.add_pronunciation(1, "<@1>", "x")


def test_a_full_dictionary_refuses_new_words_but_accepts_changes(store, monkeypatch):
    monkeypatch.setattr("bot.pronunciation.MAX_ENTRIES", 2)
    store.add_pronunciation(1, "a1", "x")
    store.add_pronunciation(1, "b1", "y")
    with pytest.raises(DictionaryFull):
        store.add_pronunciation(1, "c1", "z")
    store.add_pronunciation(1, "A1", "changed")
    assert store.dictionary(1) == {"A1": "changed", "b1": "y"}
    assert store.add_pronunciation(2, "c1", "z") == ("c1", "z", None)  # full per server


def test_autoread_channels_members_roles_and_settings(store):
    assert store.autoread_settings(1) == AutoReadSettings(1)
    assert store.set_autoread_channel(1, 10, True) and not store.set_autoread_channel(1, 10, True)
    assert store.set_autoread_member(1, 7, True) and store.autoread_members(1) == {7}
    assert store.set_autoread_ignored_role(1, 99, True) and store.autoread_ignored_roles(1) == {99}
    assert store.autoread_channels(1) == {10} and store.autoread_channels(2) == set()
    assert store.set_autoread_member(1, 7, False) and store.autoread_members(1) == set()
    saved = store.update_autoread_settings(1, who_spoke="always", read_bots=True, ignore_prefix="!")
    assert store.autoread_settings(1) == saved and saved.read_bots is True and saved.voice_chat is True
    rules = saved.rules(store.autoread_ignored_roles(1))
    assert rules.ignore_prefix == "!" and rules.ignored_role_ids == {99}
    with pytest.raises(ValueError):
        store.update_autoread_settings(1, who_spoke="sometimes")
    assert store.autoread_settings(1).who_spoke == "always"
