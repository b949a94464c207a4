"""Auto-read's rules as a table: what is read for each kind of message, and what is skipped."""

from __future__ import annotations

import pytest

from bot.autoread import Post, ReadRules, Skipped, WhoSpoke, cut, words_for

ADA = dict(author_id=1, author_name="Ada")
QUIET = ReadRules(who_spoke=WhoSpoke.OFF)


@pytest.mark.parametrize(
    ("post", "rules", "expected"),
    [
        (Post(**ADA, content="Hello there"), QUIET, "Hello there"),
        (Post(**ADA, content="   "), QUIET, Skipped.EMPTY),
        (
            Post(**ADA, content="!skip me"),
            ReadRules(ignore_prefix="!", who_spoke=WhoSpoke.OFF),
            Skipped.PREFIX,
        ),
        (Post(**ADA, content="!not a prefix here"), QUIET, "!not a prefix here"),
        (Post(**ADA, content="beep", is_bot=True), QUIET, Skipped.BOT),
        (Post(**ADA, content="hook", is_webhook=True), QUIET, Skipped.BOT),
        (Post(**ADA, content="beep", is_bot=True), ReadRules(read_bots=True, who_spoke=WhoSpoke.OFF), "beep"),
        (Post(**ADA, content="shh", silent=True), QUIET, Skipped.SILENT),
        (Post(**ADA, content="shh", silent=True), ReadRules(read_silent=True, who_spoke=WhoSpoke.OFF), "shh"),
        (
            Post(**ADA, content="hi", role_ids=frozenset({7})),
            ReadRules(ignored_role_ids=frozenset({7})),
            Skipped.ROLE,
        ),
        (Post(**ADA, content="https://a.example/x"), QUIET, Skipped.LINKS),
        (
            Post(**ADA, content="https://a.example <https://b.example>"),
            ReadRules(say_links=True, who_spoke=WhoSpoke.OFF),
            "2 links.",
        ),
        (Post(**ADA, content="see https://a.example"), QUIET, "see https://a.example"),
        (Post(**ADA, content="", attachment_types=("image/png",)), QUIET, Skipped.ATTACHMENTS),
        (
            Post(**ADA, content="", attachment_types=("image/png", "image/jpeg", "application/pdf")),
            ReadRules(say_attachments=True, who_spoke=WhoSpoke.OFF),
            "2 images and a file.",
        ),
        (Post(**ADA, content="look", attachment_types=("image/png",)), QUIET, "look"),
    ],
)
def test_what_is_read(post, rules, expected):
    assert words_for(post, rules, previous_speaker=None) == expected


def test_who_spoke_is_said_always_or_when_the_speaker_changes():
    post = Post(**ADA, content="Hi")
    assert words_for(post, ReadRules(who_spoke=WhoSpoke.ALWAYS), previous_speaker=1) == "Ada says: Hi"
    assert words_for(post, ReadRules(who_spoke=WhoSpoke.CHANGE), previous_speaker=2) == "Ada says: Hi"
    assert words_for(post, ReadRules(who_spoke=WhoSpoke.CHANGE), previous_speaker=1) == "Hi"
    assert words_for(post, ReadRules(who_spoke=WhoSpoke.OFF), previous_speaker=2) == "Hi"


def test_long_messages_are_cut_at_a_word_and_end_and_so_on():
    assert cut("short", 10) == "short"
    assert cut("one two three four", 9) == "one two, and so on."
    assert cut("one two three", 7) == "one two, and so on."
    assert cut("abcdefghij", 4) == "abcd, and so on."
    post = Post(**ADA, content="word " * 100)
    said = words_for(post, ReadRules(max_chars=40, who_spoke=WhoSpoke.OFF), None)
    assert said.endswith(", and so on.") and len(said) <= 40 + len(", and so on.")
