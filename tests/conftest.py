"""Fixtures shared by every test: the tiny random-weight Echo model (built once per run), and a real
PostgreSQL server (started once per run, only if a test asks for it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.store import VoiceLibrary
from tests.engines import ENGINES, open_at
from tests.media import speech_like
from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modal_tts.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-echo"), seed=0)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    from modal_tts.engine import EchoEngine

    return EchoEngine.from_dir(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_latent(tiny_engine) -> np.ndarray:
    return tiny_engine.encode_speaker(speech_like(6.0))


@pytest.fixture(scope="module")
def echo_tts(tiny_model_dir: Path) -> Iterator[Any]:
    """The Modal class in-process on the tiny model (`.local()` runs its @modal.enter hooks, no token)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ECHO_WEIGHTS_DIR", str(tiny_model_dir))
    from modal_tts.app import EchoTTS

    obj = EchoTTS()
    yield obj
    if obj.info.local():  # entered: stop its GPU thread
        obj.scheduler.close()
    mp.undo()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """`postgresql://…` of an empty database of this test's own."""
    yield from postgres_server.database()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The engine this run of the test keeps its library in: its id reads `test_x[sqlite]` or
    `test_x[postgresql]`."""
    return str(request.param)


@pytest.fixture
def library_at(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's library lives: a data folder under tmp_path (SQLite), or an empty database of
    its own (PostgreSQL; the server starts only for tests that run there)."""
    if engine == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "data")


@pytest.fixture
def open_test_library(library_at: str) -> Iterator[Callable[..., VoiceLibrary]]:
    """`open_test_library(**options)`: this test's library, the same one at each call (a restart
    opens it again), with `open_library`'s options. Whatever is still open at the end is closed."""
    opened: list[VoiceLibrary] = []

    def open_test_library(**options: Any) -> VoiceLibrary:
        library = open_at(library_at, **options)
        opened.append(library)
        return library

    yield open_test_library
    for library in opened:
        library.close()


# Modules that start processes, a real bot on the loopback Discord, or the tiny model's sampler many
# times: `pytest -m "not slow"` leaves them out for a quick run while editing.
SLOW_MODULES = {
    "test_bench",
    "test_cli",
    "test_crash",
    "test_engine",
    "test_engine_isolation",
    "test_local_backend",
    "test_local_timeouts",
    "test_modal_app",
    "test_playback",
    "test_store_limits",
    "test_limits_processes",
    "test_api_server",
    "test_api_fuzz",
    "test_api_process",
    "test_api_modal_path",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module else ""
        if module.startswith("tests.e2e.") or module.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
