"""Stand-ins for a machine that lacks something: a port nothing listens on (Modal or Discord down),
and a Python that can't import the `engine` extra (torch, echo-tts) though this one can."""

from __future__ import annotations

import socket
import sys

from modal_tts.prerequisites import ENGINE_PACKAGES


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago): a connect is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def without_engine(module: str, *args: str) -> list[str]:
    """The command line that runs `python -m MODULE ARGS` with every engine package unimportable."""
    script = f"""
import importlib.abc, runpy, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ENGINE_PACKAGES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Blocked())
sys.argv = [{module!r}, *sys.argv[1:]]
runpy.run_module({module!r}, run_name="__main__")
"""
    return [sys.executable, "-c", script, *args]
