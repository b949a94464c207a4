"""Can the configured speech backend work on this machine? Asked before the bot logs in to Discord
(`voicebot run`), before `clone` / `say` do any work, and by `voicebot doctor` and `voicebot deploy`,
so a setup mistake shows once, at the start, in one line, rather than at the first /say.

What only an admin can fix is raised as a typed error with one wording wherever it shows; a passing
outage (Modal unreachable for now) is a warning, since the bot can start and retry later.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from bot.errors import (
    BackendError,
    BackendNotDeployed,
    BackendUnauthorised,
    EngineNotInstalled,
    LocalEngineUnavailable,
    ModalCredentialsMissing,
)
from bot.tts.base import TTSBackend
from modal_tts import prerequisites

MODAL_CONNECT_TIMEOUT_S = 5.0  # Modal's own client retries for about a minute before it says so


def modal_credentials(environ: Mapping[str, str] = os.environ) -> bool:
    """A Modal token in the environment (or .env, already exported) or in Modal's own config file."""
    if environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET"):
        return True
    return Path(environ.get("MODAL_CONFIG_PATH", "~/.modal.toml")).expanduser().is_file()


def modal_unreachable() -> str | None:
    """Why Modal's server can't be reached from here ("Can't reach Modal at HOST (REASON)", no fix: each
    caller says what to do next), or None if it answers. Blocking: up to MODAL_CONNECT_TIMEOUT_S; call it
    in a thread from async code."""
    import modal.config

    # Modal's client takes a comma-separated list of servers and tries the first one first
    url = urlparse(str(modal.config.config.get("server_url")).split(",")[0])
    host, port = url.hostname or "api.modal.com", url.port or 443
    try:
        socket.create_connection((host, port), timeout=MODAL_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"Can't reach Modal at {host} ({reason})"
    return None


def no_weights_folder() -> LocalEngineUnavailable:
    return LocalEngineUnavailable(
        "The local backend needs a weights folder",
        "set ECHO_WEIGHTS_DIR or pass --weights DIR (fill one with `voicebot weights fetch DIR`).",
    )


def weights_problem(folder: Path | None) -> LocalEngineUnavailable | None:
    """What is wrong with the local backend's weights folder, worded once for `run`, `doctor`, `clone`
    and `say`; None when every file is in place."""
    if folder is None:
        return no_weights_folder()
    if folder.exists() and not folder.is_dir():
        return LocalEngineUnavailable(
            f"The weights folder {folder} is a file",
            "point ECHO_WEIGHTS_DIR (or --weights) at a folder filled by `voicebot weights fetch DIR`.",
        )
    missing = prerequisites.missing_weight_files(folder)
    if not missing:
        return None
    if len(missing) == len(prerequisites.WEIGHT_FILES):
        state = "doesn't exist" if not folder.exists() else "holds no weights"
    else:
        state = f"lacks {', '.join(missing)}"
    return LocalEngineUnavailable(
        f"The weights folder {folder} {state}", f"fill it with `voicebot weights fetch {folder}`."
    )


def check_setup(kind: str, weights_dir: Path | None, environ: Mapping[str, str] = os.environ) -> None:
    """What can be checked without the network or loading anything: the engine extra and a complete
    weights folder for `local`, a Modal token for `modal`."""
    if kind == "local":
        if missing := prerequisites.missing_packages():
            raise EngineNotInstalled(missing)
        if problem := weights_problem(weights_dir):
            raise problem
    elif kind == "modal" and not modal_credentials(environ):
        raise ModalCredentialsMissing()


async def check_backend(
    kind: str, weights_dir: Path | None, backend: TTSBackend, environ: Mapping[str, str] = os.environ
) -> str | None:
    """`check_setup`, then for Modal that its server answers and the app is deployed (a lookup: no GPU
    container starts). Raises what an admin must fix; returns a warning for a passing outage."""
    check_setup(kind, weights_dir, environ)
    check_deployed = getattr(backend, "check_deployed", None)
    if kind != "modal" or check_deployed is None:
        return None  # local: the weights load on first use (or when the bot warms the engine)
    if unreachable := await asyncio.to_thread(modal_unreachable):
        return f"{unreachable}: check the network. Starting anyway; speech works once Modal answers."
    try:
        await check_deployed()
    except (BackendNotDeployed, BackendUnauthorised):
        raise
    except BackendError as exc:
        reason = getattr(exc, "detail", "") or exc
        return f"Modal didn't answer the start-up check ({reason}). Starting anyway."
    return None
