"""The Docker HEALTHCHECK: healthy while the bot refreshes its heartbeat, unhealthy when it is stale."""

from __future__ import annotations

import os

from bot import health


def test_a_fresh_heartbeat_is_healthy_a_stale_or_missing_one_is_not(tmp_path):
    assert not health.is_healthy(tmp_path)
    health.beat(tmp_path)
    assert health.is_healthy(tmp_path)
    old = health.heartbeat_path(tmp_path).stat().st_mtime - health.STALE_S - 1
    os.utime(health.heartbeat_path(tmp_path), (old, old))
    assert not health.is_healthy(tmp_path)
