"""The Docker HEALTHCHECK: healthy while the bot refreshes its heartbeat, unhealthy when it is stale; each
container (host name) on a shared data volume by its own heartbeat."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bot import health


def _on_host(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: name)


def _age(path: Path, seconds: float) -> None:
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))


def test_a_fresh_heartbeat_is_healthy_a_stale_or_missing_one_is_not(tmp_path):
    assert not health.is_healthy(tmp_path)
    health.beat(tmp_path)
    assert health.is_healthy(tmp_path)
    _age(health.heartbeat_path(tmp_path), health.STALE_S + 1)
    assert not health.is_healthy(tmp_path)


def test_two_containers_on_one_data_volume_are_each_healthy_by_their_own_heartbeat(tmp_path, monkeypatch):
    _on_host(monkeypatch, "aaaa1111")
    health.beat(tmp_path)
    a = health.heartbeat_path(tmp_path)
    assert health.is_healthy(tmp_path)

    _on_host(monkeypatch, "bbbb2222")
    assert not health.is_healthy(tmp_path)  # A beats; B is not running
    health.beat(tmp_path)
    assert health.is_healthy(tmp_path)
    assert health.heartbeat_path(tmp_path) != a

    _age(a, health.STALE_S + 1)  # A stopped beating while B goes on
    assert health.is_healthy(tmp_path)
    _on_host(monkeypatch, "aaaa1111")
    assert not health.is_healthy(tmp_path)


def test_the_healthcheck_command_answers_for_its_own_container(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("VOICEBOT_BACKEND", raising=False)
    monkeypatch.setenv("VOICEBOT_DATA_DIR", str(tmp_path))
    _on_host(monkeypatch, "aaaa1111")
    health.beat(tmp_path)

    _on_host(monkeypatch, "bbbb2222")
    assert health.main() == 1
    assert ".heartbeat-bbbb2222" in capsys.readouterr().err
    health.beat(tmp_path)
    assert health.main() == 0


def test_a_host_name_becomes_a_file_name_in_the_data_dir(tmp_path, monkeypatch):
    _on_host(monkeypatch, "../up/a host")
    health.beat(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == [".heartbeat-.._up_a_host"]
    assert health.is_healthy(tmp_path)
