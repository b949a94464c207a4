"""Auto-read's rules: which posted messages are read aloud, and the words said for each. Pure functions.

The Discord side (`cogs/autoread.py`) turns a message into a `Post`, asks `words_for` what to say, and
queues it; nothing here talks to Discord, stores or synthesises.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class WhoSpoke(enum.StrEnum):
    OFF = "off"  # just the message
    ALWAYS = "always"  # "Ada says …" before every message
    CHANGE = "change"  # only when the speaker changes


class Skipped(enum.StrEnum):
    """Why a message is not read (logged and counted, never said)."""

    EMPTY = "nothing to read"
    PREFIX = "starts with the ignore prefix"
    BOT = "from a bot or webhook"
    SILENT = "sent with @silent"
    ROLE = "from a member with an ignored role"
    LINKS = "only links"
    ATTACHMENTS = "only attachments"


@dataclass(frozen=True)
class ReadRules:
    """A server's choices (/autoread settings); the defaults suit a server that just turned it on."""

    ignore_prefix: str | None = None
    read_bots: bool = False  # bots and webhooks
    read_silent: bool = False  # @silent: the sender asked not to disturb anyone
    ignored_role_ids: frozenset[int] = frozenset()
    say_links: bool = False  # a message that is only links: skipped, or read as "a link"
    say_attachments: bool = False  # only attachments: skipped, or read as "an image", "a file" …
    max_chars: int = 300  # longer messages are cut at a word and end "and so on"
    who_spoke: WhoSpoke = WhoSpoke.CHANGE


@dataclass(frozen=True)
class Post:
    """A message as auto-read sees it."""

    author_id: int
    author_name: str  # the display name the server shows
    content: str
    is_bot: bool = False
    is_webhook: bool = False
    silent: bool = False
    role_ids: frozenset[int] = frozenset()
    attachment_types: tuple[str, ...] = field(default=())  # content types, e.g. "image/png"


_LINK = re.compile(r"<?https?://\S+>?", re.IGNORECASE)
_KINDS = (
    ("image/", "an image", "images"),
    ("video/", "a video", "videos"),
    ("audio/", "a sound clip", "sound clips"),
)


def _count(n: int, one: str, many: str) -> str:
    return one if n == 1 else f"{n} {many}"


def _describe_attachments(types: tuple[str, ...]) -> str:
    parts = []
    for prefix, one, many in _KINDS:
        n = sum(1 for t in types if t.startswith(prefix))
        if n:
            parts.append(_count(n, one, many))
    other = sum(1 for t in types if not t.startswith(tuple(k[0] for k in _KINDS)))
    if other:
        parts.append(_count(other, "a file", "files"))
    return " and ".join(parts)


def cut(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a word, ending "and so on" when anything was cut."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    if " " in head and not text[max_chars].isspace():
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:") + ", and so on."


def skip_reason(post: Post, rules: ReadRules) -> Skipped | None:
    content = post.content.strip()
    if (post.is_bot or post.is_webhook) and not rules.read_bots:
        return Skipped.BOT
    if post.silent and not rules.read_silent:
        return Skipped.SILENT
    if rules.ignored_role_ids & post.role_ids:
        return Skipped.ROLE
    if rules.ignore_prefix and content.startswith(rules.ignore_prefix):
        return Skipped.PREFIX
    if not content and post.attachment_types and not rules.say_attachments:
        return Skipped.ATTACHMENTS
    if content and not _LINK.sub("", content).strip() and not rules.say_links:
        return Skipped.LINKS
    if not content and not post.attachment_types:
        return Skipped.EMPTY
    return None


def words_for(post: Post, rules: ReadRules, previous_speaker: int | None) -> str | Skipped:
    """What to say for `post` (after `previous_speaker` was last read here), or why it is skipped."""
    reason = skip_reason(post, rules)
    if reason is not None:
        return reason
    content = post.content.strip()
    links = len(_LINK.findall(content))
    if content and not _LINK.sub("", content).strip():
        words = _count(links, "A link", "links") + "."
    elif not content:
        words = _describe_attachments(post.attachment_types) + "."
        words = words[0].upper() + words[1:]
    else:
        words = cut(content, rules.max_chars)
    if rules.who_spoke == WhoSpoke.ALWAYS or (
        rules.who_spoke == WhoSpoke.CHANGE and post.author_id != previous_speaker
    ):
        words = f"{post.author_name} says: {words}"
    return words
