"""The pronunciation dictionary: whole words, any case, one pass; entries with markup are refused."""

from __future__ import annotations

import pytest

from bot import pronunciation
from bot.errors import InvalidDictionaryEntry
from bot.text import prepare


def test_whole_words_in_any_case_longest_first_in_one_pass():
    entries = {"gif": "jiff", "New York": "the big apple", "new": "brand new", "jiff": "NOPE"}
    said = pronunciation.apply("GIF gifs Gif, New  York new-ish newt", entries)
    assert said == "jiff gifs jiff, the big apple brand new-ish newt"


def test_prepare_applies_the_dictionary_to_what_is_heard():
    chunks = prepare("**SQL** at <https://sql.example>", dictionary={"sql": "sequel"})
    assert chunks[0].startswith("[S1] sequel at") and "SQL" not in chunks[0]


@pytest.mark.parametrize(
    ("word", "spoken", "problem"),
    [
        ("<@123>", "someone", "markup, a mention"),
        ("@everyone", "all", "markup, a mention"),
        ("ok", "[S2] hi", "speaker tag"),
        ("ok", "**bold**", "markup"),
        ("ok", "see https://x.example", "a link"),
        ("ok", "a\u0007b", "control characters"),
        ("ok", "a\u202eb", "control characters"),
        ("...", "dots", "at least one letter"),
        ("ok", "y" * 65, "1 to 64 characters"),
        ("", "y", "1 to 64 characters"),
    ],
)
def test_entries_with_markup_mentions_tags_or_control_characters_are_refused(word, spoken, problem):
    with pytest.raises(InvalidDictionaryEntry, match=problem):
        pronunciation.clean_entry(word, spoken)


def test_entries_are_cleaned_and_keyed_ignoring_case():
    assert pronunciation.clean_entry("  Kubernetes\t", "koo ber net ease") == (
        "Kubernetes",
        "koo ber net ease",
    )
    assert pronunciation.key("New  York") == pronunciation.key("new york")
