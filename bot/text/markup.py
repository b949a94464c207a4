"""Stage 1: Discord markup (mentions, emoji, links, markdown, timestamps) → the words a listener would
expect to hear, on one line.

Names for mentions come from a `Resolver`; looking them up may need Discord, so the caller first asks
`mentions` which ids a text needs and hands `prepare` the answers as `Names`. Choices made where
Discord text is ambiguous:

- Emoji and other symbols: see `bot.text.symbols`.
- Spoilers are read out: whoever runs `/say` typed the text to have it spoken.
- Timestamps are read as an absolute UTC date and time, including the relative (`:R`) style, because
  the audio may be heard long after it was made; seconds are not read.
- A message that is only a link is still speakable ("link to github.com").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from bot.text.symbols import _speak_special_run


class Resolver(Protocol):
    """Names for the ids inside Discord mentions, supplied by the Discord layer.

    Each method returns the name members see (display name, role name, channel name), or None when the
    id is unknown; unknown ids are read as "someone", "a role" or "a channel".
    """

    def user_name(self, user_id: int) -> str | None: ...

    def role_name(self, role_id: int) -> str | None: ...

    def channel_name(self, channel_id: int) -> str | None: ...


@dataclass(frozen=True)
class Names:
    """A `Resolver` over plain dicts: the Discord layer looks the names up first, then reads."""

    users: Mapping[int, str] = field(default_factory=dict)
    roles: Mapping[int, str] = field(default_factory=dict)
    channels: Mapping[int, str] = field(default_factory=dict)

    def user_name(self, user_id: int) -> str | None:
        return self.users.get(user_id)

    def role_name(self, role_id: int) -> str | None:
        return self.roles.get(role_id)

    def channel_name(self, channel_id: int) -> str | None:
        return self.channels.get(channel_id)


class Mentions(NamedTuple):
    """The ids a text mentions where they would be read aloud, each once, in order of appearance."""

    users: tuple[int, ...]
    roles: tuple[int, ...]
    channels: tuple[int, ...]


_LINE_SEPARATORS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_CODE_BLOCK = re.compile(r"```.*?```", re.S)
_INLINE_CODE = re.compile(r"`{1,2}([^`]+)`{1,2}")
# Headers, -# subtext, block quotes and list bullets; repeated because they nest ("> - item").
_LINE_MARKUP = re.compile(r"^[ \t]*(?:(?:>>>|>|#{1,3}|-#|[-*+•]|\d{1,3}[.)])[ \t]+)+", re.M)
# A line break with no punctuation before it still ends a thought; without a stop lines run together.
_UNPUNCTUATED_LINE_END = re.compile(r"(?<=[^\s.!?,;:。！？])[ \t]*\n\s*(?=\S)")
_MASKED_LINK = re.compile(r"\[([^\[\]\n]+)\]\(<?https?://[^\s)>]+>?\)", re.I)
_ANGLE_MARKUP = re.compile(
    r"<(?:"
    r"@!?(?P<user>\d{1,20})"
    r"|@&(?P<role>\d{1,20})"
    r"|#(?P<channel>\d{1,20})"
    r"|a?:(?P<emoji>\w{1,64}):\d{1,20}"
    r"|/(?P<command>[\w-]{1,32}(?: [\w-]{1,32}){0,2}):\d{1,20}"
    r"|t:(?P<timestamp>-?\d{1,20})(?::(?P<style>[A-Za-z]))?"
    r"|id:(?P<guide>\w{1,32})"
    r")>"
)
# Discord leaves trailing punctuation out of a link, so "see https://x.com." ends a sentence.
_URL = re.compile(r"<?https?://[^\s<>]*[^\s<>.,;:!?)\]'\"]>?", re.I)
_URL_HOST = re.compile(r"https?://(?:[^/?#@\s<>]*@)?([^/?#:\s<>]*)", re.I)
_EVERYONE = re.compile(r"@(everyone|here)\b")
_ESCAPE = re.compile(r"\\([^\w\s])")
_TIMES = re.compile(r"(?<=\d) ?\* ?(?=\d)")
_APPROXIMATELY = re.compile(r"~(?=\d)")
_SILENT_MARKUP = re.compile(r"[*~`]+")
_WORD_SEPARATORS = re.compile(r"[|\\_]+")
# Runs that contain anything but printable ASCII (spaces between them included, so repeated emoji
# separated by spaces are seen together).
_SPECIAL_RUN = re.compile(r"[^\x20-\x7e]+(?: +[^\x20-\x7e]+)*")
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +(?=[.,!?;:](?:\s|$))")
# Digits are exempt: "1000000" is a number, not a drawn-out sound.
_LONG_RUN = re.compile(r"([^\d\s])\1{3,}")

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _spoken_clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'} UTC"


def _spoken_timestamp(seconds: int, style: str | None) -> str:
    """A Discord <t:…> timestamp as words, always absolute and in UTC."""
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return "a date"
    date = f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year}"
    if style in ("t", "T"):
        return _spoken_clock(moment)
    if style in ("d", "D"):
        return date
    if style == "F":
        return f"{_WEEKDAYS[moment.weekday()]}, {date} at {_spoken_clock(moment)}"
    return f"{date} at {_spoken_clock(moment)}"


def _named(name: str | None, fallback: str) -> str:
    """A resolved name as plain text (display names love 𝓯𝓪𝓷𝓬𝔂 letters), or the neutral word."""
    name = unicodedata.normalize("NFKC", name).strip() if name else ""
    return name or fallback


def _speak_angle_markup(match: re.Match[str], resolve: Resolver | None) -> str:
    groups = match.groupdict()
    if groups["user"] is not None:
        name = resolve.user_name(int(groups["user"])) if resolve else None
        return f" {_named(name, 'someone')} "
    if groups["role"] is not None:
        name = resolve.role_name(int(groups["role"])) if resolve else None
        return f" {_named(name, 'a role')} "
    if groups["channel"] is not None:
        name = resolve.channel_name(int(groups["channel"])) if resolve else None
        return f" {_named(name, 'a channel')} "
    if groups["emoji"] is not None:
        return f" {groups['emoji'].replace('_', ' ')} "
    if groups["command"] is not None:
        return f" {groups['command']} "
    if groups["timestamp"] is not None:
        return f" {_spoken_timestamp(int(groups['timestamp']), groups['style'])} "
    return " a channel "  # <id:customize> and friends: the server's onboarding pages


def _speak_link(match: re.Match[str]) -> str:
    host_match = _URL_HOST.match(match.group().lstrip("<"))
    host = host_match.group(1).lower().removeprefix("www.").strip(".") if host_match else ""
    if not any(ch.isalnum() for ch in host):
        return " a link "
    return f" link to {host} "


def _up_to_mentions(text: str) -> str:
    """The first steps of `to_speakable`, shared with `mentions` so both see the same mentions."""
    # NFKC folds look-alike letters (𝓱𝓲, ｆｕｌｌ-width, ligatures) into ones a voice model knows.
    text = unicodedata.normalize("NFKC", text)
    text = _LINE_SEPARATORS.sub("\n", text)
    text = _CODE_BLOCK.sub(" code block ", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _LINE_MARKUP.sub("", text)
    text = _UNPUNCTUATED_LINE_END.sub(". ", text)
    return _MASKED_LINK.sub(r"\1", text)


def mentions(text: str) -> Mentions:
    """The user, role and channel ids `to_speakable` would ask a resolver about (none in code blocks)."""
    found: dict[str, dict[int, None]] = {"user": {}, "role": {}, "channel": {}}
    for match in _ANGLE_MARKUP.finditer(_up_to_mentions(text)):
        for kind, ids in found.items():
            if match.group(kind) is not None:
                ids[int(match.group(kind))] = None
    return Mentions(tuple(found["user"]), tuple(found["role"]), tuple(found["channel"]))


def to_speakable(text: str, resolve: Resolver | None = None) -> str:
    """Turn a Discord message into the plain words a listener should hear, on one line."""
    text = _up_to_mentions(text)
    text = _ANGLE_MARKUP.sub(lambda m: _speak_angle_markup(m, resolve), text)
    text = _URL.sub(_speak_link, text)
    text = _EVERYONE.sub(r"\1", text)
    text = _ESCAPE.sub(r"\1", text)
    text = text.replace("||", "")  # spoiler bars; the words inside are read
    text = _TIMES.sub(" times ", text)
    text = _APPROXIMATELY.sub("about ", text)
    text = _SILENT_MARKUP.sub("", text)
    text = _WORD_SEPARATORS.sub(" ", text)
    text = _SPECIAL_RUN.sub(_speak_special_run, text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCTUATION.sub("", text)
    return _LONG_RUN.sub(r"\1\1\1", text)
