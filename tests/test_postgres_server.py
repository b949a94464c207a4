"""The suite's own PostgreSQL is a real server: SQL, transactions and isolation between tests."""

from __future__ import annotations

import psycopg
import pytest


def test_each_test_gets_an_empty_database_of_a_real_server(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        major = conn.info.server_version // 10000
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE voices (id text PRIMARY KEY, guild_id bigint NOT NULL)")
        conn.execute("INSERT INTO voices VALUES ('a', 1)")
    assert major >= 15 and tables == (0,)


def test_a_unique_key_holds_across_two_connections(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as first, psycopg.connect(postgres_url) as second:
        first.execute("CREATE TABLE names (guild_id bigint, name text, UNIQUE (guild_id, name))")
        first.execute("INSERT INTO names VALUES (1, 'ada')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            second.execute("INSERT INTO names VALUES (1, 'ada')")
