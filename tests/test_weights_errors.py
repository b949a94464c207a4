"""What `voicebot weights fetch` says when Hugging Face answers with an error or the connection drops: the
real `huggingface_hub` client against a mock transport, so the errors are the ones it really raises."""

from __future__ import annotations

import errno

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.utils import _http

from modal_tts.weights import ECHO_REPO, HuggingFaceHub, WeightsFetchError, _hub_errors

WHAT = f"{ECHO_REPO}/pytorch_model.safetensors"


@pytest.fixture
def hub_answers(monkeypatch, tmp_path):
    """Route the hub client's requests to a handler; retries don't wait."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(_http.time, "sleep", lambda _seconds: None)

    def route(handler):
        transport = httpx2.MockTransport(handler)
        huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=transport, follow_redirects=True))

    yield route
    huggingface_hub.set_client_factory(_http.default_client_factory)


def _status(code: int, headers: dict[str, str] | None = None):
    return lambda request: httpx2.Response(code, headers=headers, request=request)


def _fetch(step: str, tmp_path) -> str:
    hub = HuggingFaceHub()
    with pytest.raises(WeightsFetchError) as caught:
        if step == "resolve":
            hub.resolve(ECHO_REPO, "pytorch_model.safetensors", "main")
        else:
            hub.download(ECHO_REPO, "pytorch_model.safetensors", "main", tmp_path / "staging")
    return str(caught.value)


@pytest.mark.parametrize("step", ["resolve", "download"])
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            _status(401),
            f"Hugging Face refused {WHAT} (HTTP 401): set HF_TOKEN to a token that may read it.",
        ),
        (
            _status(403),
            f"Hugging Face refused {WHAT} (HTTP 403): set HF_TOKEN to a token that may read it.",
        ),
        (
            _status(404),
            f"Hugging Face has no {WHAT} at that revision (HTTP 404): check weights.lock.json.",
        ),
        (
            _status(404, {"X-Error-Code": "EntryNotFound"}),
            f"Hugging Face has no {WHAT} at that revision (HTTP 404): check weights.lock.json.",
        ),
        (
            _status(404, {"X-Error-Code": "RepoNotFound"}),
            f"Hugging Face has no repo for {WHAT} (HTTP 404): check its name, and that HF_TOKEN may read it.",
        ),
        (_status(429), f"Hugging Face rate-limited {WHAT} (HTTP 429): try again later."),
        (
            _status(500),
            f"Hugging Face had a server error (HTTP 500) on {WHAT}: try again later (the download resumes).",
        ),
        (
            _status(503),
            f"Hugging Face had a server error (HTTP 503) on {WHAT}: try again later (the download resumes).",
        ),
    ],
    ids=["401", "403", "404", "404-entry", "404-repo", "429", "500", "503"],
)
def test_an_http_error_from_the_hub_says_what_it_means(hub_answers, tmp_path, step, answer, message):
    hub_answers(answer)
    assert _fetch(step, tmp_path) == message


@pytest.mark.parametrize("step", ["resolve", "download"])
@pytest.mark.parametrize(
    "drop",
    [
        httpx2.ConnectError("[Errno 111] Connection refused"),
        httpx2.ConnectTimeout("timed out"),
        httpx2.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=["refused", "timeout", "disconnected"],
)
def test_only_a_dropped_connection_says_the_network_went_away(hub_answers, tmp_path, step, drop):
    def handler(request):
        drop.request = request
        raise drop

    hub_answers(handler)
    assert _fetch(step, tmp_path) == (
        f"Can't download {WHAT}: the network went away. Run it again to resume."
    )


def test_a_full_disk_is_not_reported_as_the_network(tmp_path):
    """`voicebot weights fetch` words an OSError itself (exit 74), with the disk's own reason."""
    with pytest.raises(OSError) as caught, _hub_errors(ECHO_REPO, "pytorch_model.safetensors"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC
