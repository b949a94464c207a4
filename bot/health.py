"""`python -m bot.health`: exit 0 while the running bot's gateway connection is up (Docker HEALTHCHECK).

The bot refreshes `<data dir>/.heartbeat-<host name>` every `HEARTBEAT_S` while it is connected and
ready; a file older than `STALE_S` (or missing) means the bot is down, stuck or disconnected. The host
name (a container's id, in Docker) is in the file name so that two containers on one data volume each
answer for themselves: a dead one must not look healthy while the other beats.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

HEARTBEAT = ".heartbeat"
HEARTBEAT_S = 30.0
STALE_S = 3 * HEARTBEAT_S

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def heartbeat_path(data_dir: Path) -> Path:
    """This host's heartbeat file, its name made safe for a file name (no `/`, no spaces)."""
    return data_dir / f"{HEARTBEAT}-{_UNSAFE.sub('_', socket.gethostname())}"


def beat(data_dir: Path) -> None:
    path = heartbeat_path(data_dir)
    path.write_text(f"{time.time():.0f}\n")


def is_healthy(data_dir: Path, now: float | None = None) -> bool:
    try:
        age = (time.time() if now is None else now) - heartbeat_path(data_dir).stat().st_mtime
    except OSError:
        return False
    return age < STALE_S


def main() -> int:
    from bot.config import load_config

    data_dir = load_config().data_dir
    if is_healthy(data_dir):
        return 0
    path = heartbeat_path(data_dir)
    print(f"unhealthy: the bot has not refreshed {path} in {STALE_S:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
