"""bot.text: Discord markup → speakable words → Echo-ready chunks."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import NothingToSay, TextReadsTooLong, TextTooLong
from bot.text import (
    CHARS_PER_SECOND,
    ECHO_MAX_TEXT_BYTES,
    MAX_CHUNK_BYTES,
    MAX_CHUNK_SECONDS,
    SPEAKER_PREFIX,
    Mentions,
    Names,
    chunk,
    estimate_seconds,
    mentions,
    normalise_for_echo,
    prepare,
    to_speakable,
)


class Guild:
    """A Resolver backed by dicts, as the Discord layer would back it by a guild's caches."""

    def __init__(self) -> None:
        self.users = {1: "Ada", 2: "𝓙𝓸𝓱𝓷", 3: "   ", 4: "[S2] sneaky"}
        self.roles = {10: "Moderators"}
        self.channels = {20: "general"}

    def user_name(self, user_id: int) -> str | None:
        return self.users.get(user_id)

    def role_name(self, role_id: int) -> str | None:
        return self.roles.get(role_id)

    def channel_name(self, channel_id: int) -> str | None:
        return self.channels.get(channel_id)


def bodies(chunks: list[str]) -> list[str]:
    return [c.removeprefix(SPEAKER_PREFIX) for c in chunks]


def assert_echo_ready(chunks: list[str]) -> None:
    assert chunks
    for c in chunks:
        assert c.startswith(SPEAKER_PREFIX)
        body = c[len(SPEAKER_PREFIX) :]
        assert body.strip() == body and body
        assert re.search(r"[^\W_]", body), c
        assert len(c.encode("utf-8")) <= MAX_CHUNK_BYTES <= ECHO_MAX_TEXT_BYTES
        assert estimate_seconds(c) <= MAX_CHUNK_SECONDS
        # The only square bracket is the prefix's own speaker tag.
        assert "[" not in body and "]" not in body, c
        assert "\n" not in body and "  " not in body


# --- mentions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("hi <@1>", "hi Ada"),
        ("hi <@!1>", "hi Ada"),
        ("hi <@2>", "hi John"),  # fancy letters in a display name are folded
        ("hi <@3>", "hi someone"),  # a blank name is as good as unknown
        ("hi <@999>", "hi someone"),
        ("ask <@&10>", "ask Moderators"),
        ("ask <@&11>", "ask a role"),
        ("see <#20>", "see general"),
        ("see <#21>", "see a channel"),
        ("@everyone and @here", "everyone and here"),
    ],
)
def test_mentions_are_read_as_names(text: str, spoken: str) -> None:
    assert to_speakable(text, Guild()) == spoken


def test_mentions_without_a_resolver_use_neutral_words() -> None:
    assert to_speakable("<@1> pinged <@&10> in <#20>") == "someone pinged a role in a channel"


def test_mentions_lists_the_ids_that_will_be_read_once_each_in_order() -> None:
    text = "<@2> and <@!1> met <@2> in <#20> (<@&10>) `<@5>` <@＆11>"  # ＆: full-width, read as &
    assert mentions(text) == Mentions(users=(2, 1, 5), roles=(10, 11), channels=(20,))
    assert mentions("a code block is not read: ```<@3> <#21>```") == Mentions((), (), ())
    assert mentions("no mentions, <t:0:R> <:e:1>") == Mentions((), (), ())


def test_names_resolve_from_plain_dicts_and_leave_the_rest_neutral() -> None:
    names = Names(users={1: "Ada"}, roles={10: "Mods"}, channels={20: "general"})
    assert to_speakable("<@1> <@2> <@&10> <@&11> <#20> <#21>", names) == (
        "Ada someone Mods a role general a channel"
    )


def test_a_display_name_cannot_inject_a_speaker_tag() -> None:
    assert prepare("hi <@4>", resolve=Guild()) == ["[S1] hi sneaky"]


def test_custom_emoji_and_slash_commands_are_read_by_name() -> None:
    assert to_speakable("<:pepe_laugh:123> <a:party_blob:456>") == "pepe laugh party blob"
    assert to_speakable("try </voice clone:789> now") == "try voice clone now"


# --- unicode emoji and symbols --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("nice 👍", "nice thumbs up"),
        ("I ❤️ you", "I heart you"),  # variation selector is silent, name overridden
        ("😂😂😂", "face with tears of joy"),  # a repeated emoji is read once
        ("😂 😂 😂 ok", "face with tears of joy ok"),
        ("👋🏽 hi", "waving hand hi"),  # skin tone is silent
        ("👩‍💻", "woman personal computer"),  # ZWJ sequence reads its parts
        ("🇺🇸🇫🇷", "US flag FR flag"),
        ("1️⃣", "1"),  # keycap: the digit is what is said
        ("🎉🎊🥳🎈🎁 yay", "party popper confetti ball face with party horn and party hat yay"),
        ("© 2024", "copyright 2024"),
        ("┌──┐ box", "box"),  # box drawing is ASCII art
        ("\U0001fae8 new", "new"),  # too new for this Python's Unicode tables
    ],
)
def test_emoji_are_read_by_short_name(text: str, spoken: str) -> None:
    assert to_speakable(text) == spoken


# --- links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("see https://www.GitHub.com/a/b?c=1", "see link to github.com"),
        ("see https://github.com/x.", "see link to github.com."),
        ("no embed <https://example.org/p>", "no embed link to example.org"),
        ("read [the docs](https://docs.python.org/3/) now", "read the docs now"),
        ("http://user:pw@host.example:8080/x", "link to host.example"),
    ],
)
def test_links_are_read_as_their_site(text: str, spoken: str) -> None:
    assert to_speakable(text) == spoken


def test_a_link_alone_is_speakable() -> None:
    assert prepare("https://github.com/openai") == ["[S1] link to github.com"]


# --- markdown -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("look:\n```py\nprint('hi')\n```\nnice", "look: code block. nice"),
        ("use `pip install` here", "use pip install here"),
        ("it was ||Snape|| all along", "it was Snape all along"),
        ("**bold** *italic* __under__ ~~strike~~ _em_", "bold italic under strike em"),
        ("snake_case_name", "snake case name"),
        ("# Title\n## Sub\n### Third\n-# small print", "Title. Sub. Third. small print"),
        ("> quoted\n>>> all of this", "quoted. all of this"),
        ("- one\n* two\n1. three\n2) four", "one. two. three. four"),
        ("first line.\nsecond line", "first line. second line"),
        ("2 * 3 is ~6", "2 times 3 is about 6"),
        (r"\*not bold\*", "not bold"),
    ],
)
def test_markdown_is_stripped_to_plain_words(text: str, spoken: str) -> None:
    assert to_speakable(text) == spoken


# --- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("<t:1700000000>", "November 14, 2023 at 10:13 PM UTC"),
        ("<t:1700000000:f>", "November 14, 2023 at 10:13 PM UTC"),
        ("<t:1700000000:R>", "November 14, 2023 at 10:13 PM UTC"),
        ("<t:1700000000:F>", "Tuesday, November 14, 2023 at 10:13 PM UTC"),
        ("<t:1700000000:d>", "November 14, 2023"),
        ("<t:1700000000:D>", "November 14, 2023"),
        ("<t:1700000000:t>", "10:13 PM UTC"),
        ("<t:1700000000:T>", "10:13 PM UTC"),
        ("<t:0:t>", "12:00 AM UTC"),
        ("<t:-86400:D>", "December 31, 1969"),
        ("<t:99999999999999999999:F>", "a date"),
        ("<t:-99999999999999999:F>", "a date"),
    ],
)
def test_timestamps_are_read_as_utc_dates(text: str, spoken: str) -> None:
    assert to_speakable(text) == spoken


def test_timestamp_times_survive_echo_normalisation() -> None:
    assert prepare("meet <t:1700000000:t>") == ["[S1] meet 10 13 PM UTC"]


# --- characters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("soooooooo good", "sooo good"),
        ("hmm.......", "hmm..."),
        ("1000000 people", "1000000 people"),  # digits are never capped
        ("a\x00b\u200bc\u202ed\x7fe", "abcde"),  # control and format characters go
        ("tab\there\r\nnew   line", "tab here. new line"),
        ("𝓱𝓮𝓵𝓵𝓸 ｗｏｒｌｄ", "hello world"),
        ("z\u0335\u0321\u0327\u0328\u0361a", "z\u0335\u0321a"),  # zalgo thinned to two marks
        ("\u3164", ""),  # Hangul filler: Discord's "invisible" text
    ],
)
def test_characters_are_cleaned(text: str, spoken: str) -> None:
    assert to_speakable(text) == spoken


# --- Echo normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("wait…", "wait..."),
        ("‘single’ “double”", "'single' \"double\""),
        ("note: this; that", "note, this, that"),
        ("yes—no", "yes, no"),
        ("yes — no – maybe", "yes, no, maybe"),
        ("wait - what", "wait, what"),
        ("pages 10–20", "pages 10 to 20"),
        ("wow!!!!!!", "wow!"),
        ("what???", "what?"),
        ("really?!?!", "really?"),
        ("at 10:30", "at 10 30"),
        ("at 9:05 am", "at 9 oh 5 am"),
        ("at 10:00 PM", "at 10 PM"),
        ("at 10:00", "at 10 o'clock"),
        ("1,000 and a,b", "1,000 and a, b"),
        ("— leading and trailing —", "leading and trailing"),
    ],
)
def test_echo_normalisation(text: str, normalised: str) -> None:
    assert normalise_for_echo(text) == normalised


@pytest.mark.parametrize(
    "text",
    ["[S2] hello", "hello [S1]", "[s2]hello", "(S2) hello", "[S[S2]2] hello", "[[S2]] hello"],
)
def test_user_text_cannot_inject_speaker_tags(text: str) -> None:
    assert prepare(text) == ["[S1] hello"]


def test_other_square_brackets_become_parentheses() -> None:
    assert prepare("[laughs] ok [1]") == ["[S1] (laughs) ok (1)"]


# --- limits ---------------------------------------------------------------------------------------


def test_too_long_counts_the_raw_input() -> None:
    with pytest.raises(TextTooLong) as caught:
        prepare("<@1>" * 501)
    assert (caught.value.length, caught.value.limit) == (2004, 2000)
    assert prepare("a" * 10 + " b" * 45, max_chars=100)


def test_max_chars_is_adjustable() -> None:
    with pytest.raises(TextTooLong) as caught:
        prepare("hello world", max_chars=5)
    assert (caught.value.length, caught.value.limit) == (11, 5)


def test_text_that_reads_far_longer_than_typed_is_too_long() -> None:
    with pytest.raises(TextReadsTooLong) as caught:
        prepare("\ufdfa" * 500)  # one ligature reads as 18 characters
    assert caught.value.spoken_length > caught.value.limit == 4000
    assert "Read aloud" in caught.value.message


@pytest.mark.parametrize(
    "text", ["", "   \n\t", "**__~~||||~~__**", "!!! ??? ...", "\U0001fae8", "\u200b\u200d", "┌─┐"]
)
def test_nothing_speakable_raises(text: str) -> None:
    with pytest.raises(NothingToSay):
        prepare(text)


def test_an_emoji_alone_is_speakable() -> None:
    assert prepare("👍") == ["[S1] thumbs up"]


# --- chunking -------------------------------------------------------------------------------------


def test_short_text_is_one_chunk() -> None:
    assert chunk("Hello there.") == ["[S1] Hello there."]
    assert chunk("   ") == []


def test_estimate_uses_chars_per_second_and_ignores_the_prefix() -> None:
    assert estimate_seconds("a" * 28) == pytest.approx(28 / CHARS_PER_SECOND)
    assert estimate_seconds("[S1] " + "a" * 28) == pytest.approx(28 / CHARS_PER_SECOND)
    # A CJK character takes about as long to say as three Latin letters.
    assert estimate_seconds("日本語") == pytest.approx(9 / CHARS_PER_SECOND)


def test_chunks_split_at_sentence_ends() -> None:
    sentences = [f"Sentence number {n} has a few more words in it." for n in range(20)]
    chunks = chunk(" ".join(sentences))
    assert_echo_ready(chunks)
    assert len(chunks) == 3
    assert all(body.endswith(".") for body in bodies(chunks))
    assert " ".join(bodies(chunks)) == " ".join(sentences)


def test_long_sentence_splits_at_a_comma_before_a_word() -> None:
    text = ("words " * 35).strip() + ", " + ("more " * 40).strip()
    chunks = chunk(text)
    assert bodies(chunks)[0].endswith(",")
    assert " ".join(bodies(chunks)) == text


def test_run_on_text_splits_into_balanced_chunks() -> None:
    text = " ".join(["word"] * 80)  # 399 characters: just over one chunk
    sizes = [len(body) for body in bodies(chunk(text))]
    assert sizes == [199, 199]


def test_a_far_comma_does_not_leave_a_tiny_last_chunk() -> None:
    text = "word " * 68 + "end, the lazy dog jumps"
    sizes = [len(body) for body in bodies(chunk(text))]
    assert len(sizes) == 2 and min(sizes) > 150


def test_a_long_word_is_cut_into_pieces_that_fit() -> None:
    word = "".join(chr(ord("a") + (n * 7) % 26) for n in range(2000))
    chunks = chunk(word)
    assert_echo_ready(chunks)
    assert "".join(bodies(chunks)) == word
    sizes = [len(body) for body in bodies(chunks)]
    assert len(sizes) == 6 and max(sizes) - min(sizes) <= 5


def test_cjk_without_spaces_fits_time_and_bytes() -> None:
    text = "我们今天去公园玩了很长时间天气非常好大家都很开心" * 40  # 960 characters
    chunks = chunk(text)
    assert_echo_ready(chunks)
    assert "".join(bodies(chunks)) == text
    assert len(chunks) == 9


def test_cjk_sentences_split_after_their_full_stops() -> None:
    text = "这是一个很长的中文句子。" * 60
    chunks = chunk(text)
    assert_echo_ready(chunks)
    assert all(body.endswith("。") for body in bodies(chunks))
    assert "".join(bodies(chunks)) == text


def test_four_byte_characters_are_limited_by_bytes() -> None:
    text = "".join(chr(0x10330 + n % 27) for n in range(600))  # Gothic letters, 4 bytes each
    chunks = chunk(text)
    assert_echo_ready(chunks)
    assert len(chunks) == 4
    assert "".join(bodies(chunks)) == text


def test_accents_stay_with_their_letter_when_a_word_is_cut() -> None:
    text = "".join(chr(ord("a") + n % 26) + "\u0301" for n in range(400))
    chunks = chunk(text)
    assert "".join(bodies(chunks)) == text
    assert all(not body.startswith("\u0301") for body in bodies(chunks))


def test_bare_punctuation_never_forms_its_own_chunk() -> None:
    text = "hello " + "-." * 400
    chunks = chunk(text)
    assert_echo_ready(chunks)
    assert bodies(chunks)[0].startswith("hello ")


def test_chunk_limits_are_adjustable() -> None:
    chunks = chunk("one two three four five six", max_seconds=1.0)  # 14 characters
    assert bodies(chunks) == ["one two three", "four five six"]
    chunks = chunk("one two three four five six", max_bytes=len(SPEAKER_PREFIX) + 8)
    assert bodies(chunks) == ["one two", "three", "four", "five six"]


def test_prepare_on_long_mixed_text_keeps_every_word_in_order() -> None:
    text = ("Hey <@1>, did you see https://example.com/post? It's **great**!!! " * 30)[:1990]
    chunks = prepare(text, resolve=Guild())
    assert_echo_ready(chunks)
    words = " ".join(bodies(chunks)).split()
    assert words[:10] == ["Hey", "Ada,", "did", "you", "see", "link", "to", "example.com?", "It's", "great!"]
    # Five chunks of up to 25 s, the first sentence split off so that the message starts sooner.
    assert len(chunks) == 6 and chunks[0] == "[S1] Hey Ada, did you see link to example.com?"
    assert all(body.endswith("great!") for body in bodies(chunks)[1:])


# --- properties -----------------------------------------------------------------------------------

_MARKUP = [
    "<@123>",
    "<@!45>",
    "<@&6>",
    "<#7>",
    "<:a_b:8>",
    "<a:x:9>",
    "</cmd sub:1>",
    "<t:1700000000:R>",
    "<t:99999999999999999999>",
    "<t:",
    "@everyone",
    "https://www.example.com/a?b=c",
    "<https://x.y>",
    "[masked](https://z.org)",
    "```code\nblock```",
    "```",
    "`inline`",
    "||spoiler||",
    "**",
    "__",
    "~~",
    "*",
    "_",
    "> ",
    ">>> ",
    "# ",
    "-# ",
    "- ",
    "1. ",
    "\n",
    " ",
    "[S2]",
    "[S1]",
    "(S2)",
    "S1",
    "[",
    "]",
    "…",
    "“",
    "’",
    "—",
    "–",
    ":",
    ";",
    "!!!",
    "???",
    "😂",
    "👍🏽",
    "👩‍💻",
    "🇺🇸",
    "❤️",
    "\u200d",
    "\ufe0f",
    "\u0301",
    "\x00",
    "\u202e",
    "\u3164",
    "soooooo",
    "word",
    "日本語",
    "\ufdfa",
]

_markup_text = st.lists(st.one_of(st.sampled_from(_MARKUP), st.text(max_size=8)), max_size=60).map("".join)

_PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _prepare_or_refuse(text: str) -> list[str] | None:
    try:
        return prepare(text, resolve=Guild())
    except (TextTooLong, TextReadsTooLong, NothingToSay):
        return None


@_PROPERTY
@given(st.text(max_size=400) | st.text(min_size=1500, max_size=2000))
def test_any_unicode_gives_echo_ready_chunks_or_a_typed_refusal(text: str) -> None:
    chunks = _prepare_or_refuse(text)
    if chunks is not None:
        assert_echo_ready(chunks)


@_PROPERTY
@given(_markup_text)
def test_any_discord_markup_gives_echo_ready_chunks_or_a_typed_refusal(text: str) -> None:
    chunks = _prepare_or_refuse(text)
    if chunks is not None:
        assert_echo_ready(chunks)


_word = st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)
_separator = st.sampled_from([" ", " ", " ", ". ", ", ", "! ", "? ", "\n"])


@_PROPERTY
@given(st.lists(st.tuples(_word, _separator), min_size=1, max_size=350))
def test_plain_words_come_out_complete_and_in_order(pairs: list[tuple[str, str]]) -> None:
    text = "".join(word + sep for word, sep in pairs)[:2000]
    expected = [re.sub(r"(.)\1{3,}", r"\1\1\1", w) for w in re.findall(r"[A-Za-z]+", text)]
    chunks = prepare(text)
    assert_echo_ready(chunks)
    assert re.findall(r"[A-Za-z]+", " ".join(bodies(chunks))) == expected


@_PROPERTY
@given(st.lists(st.from_regex(r"[a-z]{1,900}", fullmatch=True), min_size=1, max_size=4))
def test_long_words_lose_no_letters(words: list[str]) -> None:
    text = " ".join(words)
    chunks = chunk(text)
    assert_echo_ready(chunks)
    assert "".join(bodies(chunks)).replace(" ", "") == text.replace(" ", "")


# --- speed ----------------------------------------------------------------------------------------


def test_prepare_is_fast_on_a_full_length_mixed_message() -> None:
    piece = (
        "Hey <@1>! Check https://www.example.com/some/path?x=1 — it's **really** cool 😂😂. "
        "See <#20> at <t:1700000000:F>; ||spoiler|| `code` soooooo good!!! 日本語のテキスト。\n"
        "> quoted line\n- item one\n"
    )
    text = (piece * 20)[:2000]
    assert len(prepare(text, resolve=Guild())) >= 2
    runs = 10
    started = time.perf_counter()
    for _ in range(runs):
        prepare(text, resolve=Guild())
    assert (time.perf_counter() - started) / runs < 0.020


def test_a_long_first_chunk_leads_with_its_first_sentence() -> None:
    long_tail = "This second sentence runs on for a good while so that the chunk is long. " * 3
    assert prepare("Hello there, my friend. " + long_tail)[0] == "[S1] Hello there, my friend."
    # Nothing to gain: a short message, a first sentence too long or too short, no sentence end.
    assert prepare("Hello there, my friend. How are you?") == ["[S1] Hello there, my friend. How are you?"]
    assert prepare("Hi. " + long_tail)[0].startswith("[S1] Hi. This second")
    assert len(prepare("word " * 60)) == 1
    first_long = "This opening sentence alone takes well over six seconds to say, even when read quickly. "
    assert prepare(first_long + long_tail)[0].startswith("[S1] This opening sentence alone takes well over")
    assert len(prepare(first_long + long_tail)) == 1
