"""Per-server API keys for the OpenAI-compatible HTTP API (`voicebot api`), made with `/apikey` or
`voicebot apikey`.

A key reads `vbk_<id>_<secret>`. The id (kept as `key_<id>`, 12 hex digits) is public: lists, audit lines
and revocations name a key by it or by its name. The secret (64 hex digits, from `secrets`) is shown
once, when the key is made; only its sha256 is kept, so the library (or a copy of it) holds no working
key. A key belongs to one server: what is spoken with it is charged to that server and to the member who
made it (`created_by`; 0 when made from a terminal without `--owner`). Revoking a key deletes its row.
`api_key_for` compares hashes in constant time, and as much work is done for an unknown id as for a
known one, so neither the timing nor the answer tells which ids exist.

Keys are a credential of this deployment, not a server's data to move: `voicebot export` leaves them out
(an import into another bot must not bring working keys); `voicebot migrate` copies them, as it moves
the same bot to PostgreSQL. The purge of a server the bot left deletes its keys, and a forget deletes
the keys its member made (bot.store.privacy).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import itertools
import re
import secrets
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bot import audit
from bot.errors import ApiKeyNameTaken, ApiKeyNotFound, InvalidApiKeyName, TooManyApiKeys
from bot.store import sql
from bot.store.engine import Engine
from bot.store.faults import guarded

MAX_API_KEYS = 25  # per server
MAX_NAME_CHARS = 64
DEFAULT_NAME = "key"
PREFIX = "vbk_"
_ID_HEX, _SECRET_HEX = 12, 64
KEY_ID = re.compile(rf"key_[0-9a-f]{{{_ID_HEX}}}")
FULL_KEY = re.compile(rf"{PREFIX}([0-9a-f]{{{_ID_HEX}}})_([0-9a-f]{{{_SECRET_HEX}}})")
# What an unknown id's secret is compared with, so that a miss costs what a hit does.
_NO_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as lists show it: never its secret, nor the secret's hash."""

    id: str
    guild_id: int
    created_by: int  # the member charged with the key's use; 0: made from a terminal
    name: str
    created_at: float  # seconds since the epoch
    last_used_at: float | None  # None: never used


_COLUMNS = "id, guild_id, created_by, name, created_at, last_used_at"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _parse(full_key: str) -> tuple[str, str] | None:
    """A full key's id and secret; None when it isn't shaped like one."""
    found = FULL_KEY.fullmatch(full_key.strip()) if isinstance(full_key, str) else None
    return None if found is None else (f"key_{found[1]}", found[2])


def named_as(key: str) -> str:
    """How a message names what was typed to pick a key: a pasted key (whole or cut) only by its id
    part, so that no message or log repeats a secret."""
    wanted = key.strip()
    parsed = _parse(wanted)
    return parsed[0] if parsed else wanted[:16] + "…" if wanted.startswith(PREFIX) else wanted


def clean_key_name(name: str) -> str:
    """A key's name as kept: stripped, "key" when empty; InvalidApiKeyName when it can't be one."""
    name = " ".join(name.split())
    if not name:
        return DEFAULT_NAME
    if name.startswith(PREFIX) or KEY_ID.fullmatch(name):  # a pasted key (or id) would be kept in clear
        raise InvalidApiKeyName(
            name[:8] + "…", "it looks like a key or a key's id; a name is a label like “CI”"
        )
    if len(name) > MAX_NAME_CHARS:
        raise InvalidApiKeyName(name, f"use at most {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidApiKeyName(name, "use letters, digits, spaces and punctuation only")
    return name


def _key_of(row: Sequence[Any]) -> ApiKey:
    key_id, guild_id, created_by, name, created_at, last_used_at = row[:6]
    used = None if last_used_at is None else float(last_used_at)
    return ApiKey(str(key_id), int(guild_id), int(created_by), str(name), float(created_at), used)


def _default_names() -> Iterator[str]:
    yield DEFAULT_NAME
    yield from (f"{DEFAULT_NAME}-{n}" for n in itertools.count(2))


class ApiKeys(Engine):
    """The library's part for API keys."""

    def _api_keys(self, where: str, args: builtins.list[object]) -> builtins.list[ApiKey]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM api_keys WHERE {where} ORDER BY created_at, id", args)
        return [_key_of(row) for row in rows]

    @guarded
    def create_api_key(
        self, guild_id: int, *, created_by: int, name: str, actor: int | str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for the server, and the full key: the only time it is known (see the module's
        docstring). Refused when the name is taken in this server (case-blind) or the server has
        MAX_API_KEYS; no name gives the first free of "key", "key-2", …. `actor`, for the audit line:
        who made it (default: `created_by`)."""
        cleaned = clean_key_name(name)
        key_id, secret = f"key_{secrets.token_hex(_ID_HEX // 2)}", secrets.token_hex(_SECRET_HEX // 2)
        with self.transaction(lock=("api_keys", guild_id)) as tx:
            rows = tx.execute("SELECT name FROM api_keys WHERE guild_id = ?", [guild_id]).fetchall()
            taken = {str(row[0]).casefold(): str(row[0]) for row in rows}
            if len(rows) >= MAX_API_KEYS:
                raise TooManyApiKeys(MAX_API_KEYS)
            if cleaned == DEFAULT_NAME and not name.strip():
                cleaned = next(n for n in _default_names() if n.casefold() not in taken)
            if cleaned.casefold() in taken:
                raise ApiKeyNameTaken(taken[cleaned.casefold()])
            key = ApiKey(key_id, int(guild_id), int(created_by), cleaned, self._database_now(tx), None)
            sql.insert(tx, "api_keys", {**key.__dict__, "secret_hash": _hash(secret)})
        audit.record(
            "apikey",
            actor=actor if actor is not None else (created_by or None),
            guild=guild_id,
            action="create",
            key=key.id,
            name=key.name,
            owner=key.created_by,
        )
        return key, f"{PREFIX}{key_id.removeprefix('key_')}_{secret}"

    @guarded
    def api_key_for(self, full_key: str) -> ApiKey | None:
        """The key `full_key` is, or None: not shaped like a key, an unknown or revoked id, or a wrong
        secret. Never raises for what a client sent; the secret's hash is compared in constant time."""
        parsed = _parse(full_key)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = self._execute(f"SELECT {_COLUMNS}, secret_hash FROM api_keys WHERE id = ?", [key_id]).fetchone()
        stored = str(row[6]) if row is not None else _NO_HASH
        matches = hmac.compare_digest(_hash(secret), stored)
        return _key_of(row) if row is not None and matches else None

    @guarded
    def api_key_used(self, key_id: str, at: float | None = None) -> None:
        """Note when the key was last used (`at`, default now); the API calls this at most once a
        minute per key."""
        with self.transaction() as tx:
            when = self._database_now(tx) if at is None else at
            tx.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [when, key_id])

    @guarded
    def api_keys(self, guild_id: int) -> builtins.list[ApiKey]:
        """The server's keys, oldest first."""
        return self._api_keys("guild_id = ?", [guild_id])

    @guarded
    def revoke_api_key(self, guild_id: int, key: str, *, actor: int | str | None = None) -> ApiKey:
        """Delete the server's key named by `key`: its id (`key_…`), its name (case-blind), or the full
        key itself. ApiKeyNotFound when the server has no such key; another server's is never touched.
        `actor`, for the audit line: who revoked it."""
        wanted, shown = key.strip(), named_as(key)
        with self.transaction(lock=("api_keys", guild_id)) as tx:
            rows = tx.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE guild_id = ? ORDER BY created_at, id", [guild_id]
            ).fetchall()
            keys = [_key_of(row) for row in rows]
            found = next((k for k in keys if k.id == shown), None) or next(
                (k for k in keys if k.name.casefold() == " ".join(wanted.split()).casefold()), None
            )
            if found is None:
                raise ApiKeyNotFound(shown)
            tx.execute("DELETE FROM api_keys WHERE id = ?", [found.id])
        audit.record("apikey", actor=actor, guild=guild_id, action="revoke", key=found.id, name=found.name)
        return found
