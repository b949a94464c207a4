"""Every endpoint fuzzed from the OpenAPI document the server itself serves (schemathesis): whatever the
generated request, no 5xx, and every answer (status, content type, headers, body) is one the document
describes. The tiny model is behind the API, so the requests that reach the engine are really spoken."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.api.server import create_app, serve
from bot.api.service import ApiService
from bot.config import Config
from bot.limits import Limits
from bot.store import open_library
from bot.tts.local_backend import LocalBackend
from tests.test_api_server import GUILD, add_voice

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Served:
    """The API on its own event loop in a thread, as `voicebot api` runs it, for schemathesis's
    synchronous client."""

    def __init__(self, data: Path, engine, latent) -> None:
        self.data, self.engine, self.latent = data, engine, latent
        self.ready = threading.Event()
        self.url = ""
        self.key = ""
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _serve(self) -> None:
        store = open_library(self.data)
        add_voice(store, self.latent, self.engine.revision, "Ann")
        store.update_settings(GUILD, speaker_consent=False)  # so new voices get as far as their audio
        _, self.key = store.create_api_key(GUILD, created_by=42, name="fuzz")
        backend = LocalBackend(engine=self.engine)
        config = Config(data_dir=self.data, max_reference_bytes=1024 * 1024)
        runner = await serve(create_app(ApiService(store, backend, Limits(store), config)), "127.0.0.1", 0)
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._stop = asyncio.Event()
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await backend.close()
        store.close()

    def __enter__(self) -> Served:
        self._thread.start()
        assert self.ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_engine, tiny_latent) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("fuzz") / "data", tiny_engine, tiny_latent) as running:
        yield running


@pytest.mark.slow
def test_every_answer_matches_the_document(served: Served):
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/audio/speech",
        "GET /v1/audio/voices",
        "POST /v1/audio/voices",
        "DELETE /v1/audio/voices/{voice_id}",
        "GET /healthz",
    }
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"

        @given(case=st.tuples(operation.as_strategy(), st.booleans()).map(_speaking_as_ann))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_documented(case) -> None:
            response = case.call_and_validate(
                base_url=served.url,
                headers={"Authorization": f"Bearer {served.key}"},
                checks=CHECKS,
                timeout=120,
            )
            statuses.setdefault(name, set()).add(response.status_code)  # noqa: B023

        answers_as_documented()
    # the fuzzing got past the checks to the engine, and was refused where it should be
    assert {200, 400} <= statuses["POST /v1/audio/speech"], statuses
    assert 400 in statuses["POST /v1/audio/voices"], statuses


def _speaking_as_ann(drawn):
    """Half the speech requests name the voice that exists, so generated text reaches the engine."""
    case, known = drawn
    if known and case.path == "/v1/audio/speech" and isinstance(case.body, dict):
        case.body["voice"] = "Ann"
    return case
