"""What a server set up for reading messages aloud: its pronunciation dictionary and auto-read."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from bot import pronunciation
from bot.autoread import ReadRules, WhoSpoke
from bot.errors import DictionaryEntryNotFound, DictionaryFull
from bot.store import sql
from bot.store.engine import Engine
from bot.store.faults import guarded
from bot.store.settings import checked

# Settings stored as 0/1 columns.
_FLAGS = ("voice_chat", "join_on_post", "read_bots", "read_silent", "say_links", "say_attachments")


@dataclass(frozen=True)
class AutoReadSettings:
    """A server's auto-read choices (/autoread settings); the defaults suit one that just turned it on."""

    guild_id: int
    voice_chat: bool = True  # read the text chat of the voice channel the bot is in
    fallback_voice_id: str | None = None  # for opted-in members without a default voice; None: skip them
    join_on_post: bool = True  # join an opted-in member's voice channel when they post and the bot is free
    who_spoke: str = WhoSpoke.CHANGE.value
    ignore_prefix: str | None = None
    read_bots: bool = False
    read_silent: bool = False
    say_links: bool = False
    say_attachments: bool = False
    max_chars: int = 300
    queue_limit: int = 10  # queued auto-read messages per server; beyond it the oldest are dropped

    def rules(self, ignored_role_ids: frozenset[int]) -> ReadRules:
        return ReadRules(
            ignore_prefix=self.ignore_prefix,
            read_bots=self.read_bots,
            read_silent=self.read_silent,
            ignored_role_ids=ignored_role_ids,
            say_links=self.say_links,
            say_attachments=self.say_attachments,
            max_chars=self.max_chars,
            who_spoke=WhoSpoke(self.who_spoke),
        )


class Reading(Engine):
    """The library's part for the dictionary and auto-read."""

    # --- pronunciation dictionary ---------------------------------------------------------------

    @guarded
    def dictionary(self, guild_id: int) -> dict[str, str]:
        """Word → spoken as, in alphabetical order of the word."""
        rows = self._rows(
            "SELECT word, spoken FROM pronunciations WHERE guild_id = ? "
            f"AND {self._has_type('word', 'text')} AND {self._has_type('spoken', 'text')} ORDER BY word_key",
            [guild_id],
        )
        return dict(rows)

    @guarded
    def add_pronunciation(self, guild_id: int, word: str, spoken: str) -> tuple[str, str, str | None]:
        """Add or replace an entry; refused when invalid or when the dictionary is full. Returns the word
        and its spoken form as stored, and what the word was said as before (None: it is new)."""
        word, spoken = pronunciation.clean_entry(word, spoken)
        key = pronunciation.key(word)
        with self.transaction(lock=("dictionary", guild_id)) as tx:
            existing = tx.execute(
                "SELECT spoken FROM pronunciations WHERE guild_id = ? AND word_key = ?", [guild_id, key]
            ).fetchone()
            count = tx.execute(
                "SELECT count(*) FROM pronunciations WHERE guild_id = ?", [guild_id]
            ).fetchone()[0]
            if not existing and count >= pronunciation.MAX_ENTRIES:
                raise DictionaryFull(pronunciation.MAX_ENTRIES)
            sql.upsert(
                tx,
                "pronunciations",
                {"guild_id": guild_id, "word_key": key, "word": word, "spoken": spoken},
                ["guild_id", "word_key"],
            )
        return word, spoken, None if existing is None else str(existing[0])

    @guarded
    def remove_pronunciation(self, guild_id: int, word: str) -> str:
        key = pronunciation.key(word)
        with self.transaction() as tx:
            row = tx.execute(
                "SELECT word FROM pronunciations WHERE guild_id = ? AND word_key = ?", [guild_id, key]
            ).fetchone()
            if row is None:
                raise DictionaryEntryNotFound(word[:64])
            tx.execute("DELETE FROM pronunciations WHERE guild_id = ? AND word_key = ?", [guild_id, key])
        return str(row[0])

    # --- auto-read ------------------------------------------------------------------------------

    @guarded
    def autoread_settings(self, guild_id: int) -> AutoReadSettings:
        rows = self._records("SELECT * FROM autoread_settings WHERE guild_id = ?", [guild_id])
        if not rows:
            return AutoReadSettings(guild_id)
        checked(self.where, "autoread_settings", rows[0])
        values: dict[str, Any] = {
            k: (bool(v) if k in _FLAGS else v) for k, v in rows[0].items() if v is not None
        }
        return AutoReadSettings(**values)

    @guarded
    def update_autoread_settings(self, guild_id: int, **changes: object) -> AutoReadSettings:
        updated = replace(self.autoread_settings(guild_id), **changes)  # type: ignore[arg-type]
        WhoSpoke(updated.who_spoke)  # refuse an unknown mode before storing it
        row = {f.name: getattr(updated, f.name) for f in fields(updated)}
        with self.transaction() as tx:
            sql.upsert(
                tx,
                "autoread_settings",
                {k: int(v) if k in _FLAGS else v for k, v in row.items()},
                ["guild_id"],
            )
        return updated

    @guarded
    def autoread_channels(self, guild_id: int) -> set[int]:
        return set(self._ids("autoread_channels", "channel_id", guild_id))

    @guarded
    def set_autoread_channel(self, guild_id: int, channel_id: int, on: bool) -> bool:
        """Add or remove a channel; False when nothing changed."""
        return self._set_member_of("autoread_channels", "channel_id", guild_id, channel_id, on)

    @guarded
    def autoread_members(self, guild_id: int) -> set[int]:
        return set(self._ids("autoread_members", "user_id", guild_id))

    @guarded
    def set_autoread_member(self, guild_id: int, user_id: int, on: bool) -> bool:
        return self._set_member_of("autoread_members", "user_id", guild_id, user_id, on)

    @guarded
    def autoread_ignored_roles(self, guild_id: int) -> frozenset[int]:
        return frozenset(self._ids("autoread_ignored_roles", "role_id", guild_id))

    @guarded
    def set_autoread_ignored_role(self, guild_id: int, role_id: int, on: bool) -> bool:
        return self._set_member_of("autoread_ignored_roles", "role_id", guild_id, role_id, on)

    def _ids(self, table: str, column: str, guild_id: int) -> list[int]:
        typed = self._has_type(column, "integer")
        rows = self._rows(f"SELECT {column} FROM {table} WHERE guild_id = ? AND {typed}", [guild_id])
        return [int(r[0]) for r in rows]

    def _set_member_of(self, table: str, column: str, guild_id: int, value: int, on: bool) -> bool:
        with self.transaction(lock=(table, guild_id)) as tx:
            present = tx.execute(
                f"SELECT 1 FROM {table} WHERE guild_id = ? AND {column} = ?", [guild_id, value]
            ).fetchone()
            if on and not present:
                sql.insert(tx, table, {"guild_id": guild_id, column: value})
            elif not on and present:
                tx.execute(f"DELETE FROM {table} WHERE guild_id = ? AND {column} = ?", [guild_id, value])
            return bool(on) != bool(present)
