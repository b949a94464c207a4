"""`python -m bot.health`: exit 0 while the running bot's gateway connection is up (Docker HEALTHCHECK).

The bot refreshes `<data dir>/.heartbeat` every `HEARTBEAT_S` while it is connected and ready; a file
older than `STALE_S` (or missing) means the bot is down, stuck or disconnected.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HEARTBEAT = ".heartbeat"
HEARTBEAT_S = 30.0
STALE_S = 3 * HEARTBEAT_S


def heartbeat_path(data_dir: Path) -> Path:
    return data_dir / HEARTBEAT


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
    print(f"unhealthy: no heartbeat from the bot in {data_dir} for {STALE_S:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
