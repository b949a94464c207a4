"""Fill a weights directory from the two Hugging Face repos, in the layout `EchoEngine.from_dir` reads.

Idempotent and resumable: a file already in place is kept; a download lands in `DIR/.downloading/`
(where the hub resumes a partial one) and is renamed into place only once its sha256 matches the hub's.
Revisions are pinned: `REVISIONS` names them, and the commit each file came from is written to
`DIR/weights.lock.json`, which later runs (a resume, a refill) follow instead of the branch.

Offline it fails in seconds with `WeightsFetchError` (one line), not after the hub's retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

ECHO_REPO = "jordand/echo-tts-base"
DAC_REPO = "jordand/fish-s1-dac-min"

# A branch or commit per repo; `ECHO_WEIGHTS_REVISION_<ECHO|DAC>` overrides it. The lock file then
# holds the exact commit, so "main" moving on never changes a filled folder's files.
REVISIONS = {
    ECHO_REPO: os.environ.get("ECHO_WEIGHTS_REVISION_ECHO", "main"),
    DAC_REPO: os.environ.get("ECHO_WEIGHTS_REVISION_DAC", "main"),
}

# (repo, file in the repo, where it goes in the weights directory)
WEIGHTS: tuple[tuple[str, str, str], ...] = (
    (ECHO_REPO, "pytorch_model.safetensors", "echo/pytorch_model.safetensors"),
    (ECHO_REPO, "pca_state.safetensors", "echo/pca_state.safetensors"),
    (DAC_REPO, "pytorch_model.safetensors", "dac/pytorch_model.safetensors"),
)
LOCK = "weights.lock.json"
STAGING = ".downloading"
TIMEOUT_S = 10.0  # per request: a dead network shows in seconds


class WeightsFetchError(Exception):
    """One line saying what failed and what to do."""


@dataclass(frozen=True)
class Remote:
    """What the hub says a file is: the commit it resolves to, its sha256 (LFS files) and size."""

    commit: str
    sha256: str | None
    size: int | None


class Hub(Protocol):
    def reachable(self) -> None: ...
    def resolve(self, repo: str, filename: str, revision: str) -> Remote: ...
    def download(self, repo: str, filename: str, revision: str, directory: Path) -> Path: ...


class HuggingFaceHub:
    """The real hub, through `huggingface_hub` (downloads go through hf_xet where the repo uses Xet)."""

    def reachable(self) -> None:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise WeightsFetchError(
                "HF_HUB_OFFLINE is set, so nothing can be downloaded: unset it, or copy the weights "
                "in by hand."
            )
        endpoint = urlparse(constants.ENDPOINT)
        host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
        try:
            socket.create_connection((host, port), timeout=TIMEOUT_S).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise WeightsFetchError(
                f"Can't reach {host} ({reason}). Check the network (or HF_ENDPOINT), then run it again."
            ) from None

    def resolve(self, repo: str, filename: str, revision: str) -> Remote:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        with _hub_errors(repo, filename):
            meta = get_hf_file_metadata(
                hf_hub_url(repo, filename, revision=revision),
                token=os.environ.get("HF_TOKEN"),
                timeout=TIMEOUT_S,
            )
        etag = (meta.etag or "").strip('"')
        sha256 = etag if len(etag) == 64 else None  # an LFS file's etag is its sha256
        return Remote(meta.commit_hash or revision, sha256, meta.size)

    def download(self, repo: str, filename: str, revision: str, directory: Path) -> Path:
        from huggingface_hub import hf_hub_download

        with _hub_errors(repo, filename):
            return Path(
                hf_hub_download(
                    repo,
                    filename,
                    revision=revision,
                    local_dir=directory,
                    token=os.environ.get("HF_TOKEN"),
                    etag_timeout=TIMEOUT_S,
                )
            )


@contextlib.contextmanager
def _hub_errors(repo: str, filename: str) -> Iterator[None]:
    """The hub's exceptions (and its tracebacks) as one WeightsFetchError line."""
    try:
        yield
    except WeightsFetchError:
        raise
    except Exception as exc:
        mapped = _fetch_error(exc, f"{repo}/{filename}")
        if mapped is None:
            raise
        raise mapped from exc


def _fetch_error(exc: BaseException, what: str) -> WeightsFetchError | None:
    """The hub's error as one line by what it means: refused, missing, busy, down, or the network gone.
    None for anything else (a full disk, say), which the caller words as itself."""
    from huggingface_hub import errors

    cause = exc.__cause__
    # hf_hub_download hides why it could not ask the hub (a 403, a 500, a dropped connection) behind this
    if isinstance(exc, errors.LocalEntryNotFoundError) and cause and (mapped := _fetch_error(cause, what)):
        return mapped
    if isinstance(exc, errors.HfHubHTTPError):  # an OSError too, so before the network's errors below
        status = exc.response.status_code
        if status in (401, 403) or isinstance(exc, errors.GatedRepoError):
            return WeightsFetchError(
                f"Hugging Face refused {what} (HTTP {status}): set HF_TOKEN to a token that may read it."
            )
        if status == 404 and isinstance(exc, errors.RepositoryNotFoundError):
            return WeightsFetchError(
                f"Hugging Face has no repo for {what} (HTTP 404): check its name, and that HF_TOKEN may "
                "read it."
            )
        if status == 404:
            return WeightsFetchError(f"Hugging Face has no {what} at that revision (HTTP 404): check {LOCK}.")
        if status == 429:
            return WeightsFetchError(f"Hugging Face rate-limited {what} (HTTP 429): try again later.")
        if status >= 500:
            return WeightsFetchError(
                f"Hugging Face had a server error (HTTP {status}) on {what}: try again later (the download "
                "resumes)."
            )
        first = str(exc).strip().splitlines()[0]
        return WeightsFetchError(f"Hugging Face failed on {what} (HTTP {status}): {first}")
    if isinstance(exc, errors.EntryNotFoundError) and not isinstance(exc, errors.LocalEntryNotFoundError):
        return WeightsFetchError(f"Hugging Face has no {what} at that revision: check {LOCK}.")
    if isinstance(exc, _connection_errors()):
        return WeightsFetchError(f"Can't download {what}: the network went away. Run it again to resume.")
    return None


def _connection_errors() -> tuple[type[BaseException], ...]:
    """What a dropped or refused connection raises: OSErrors from sockets, and the hub's HTTP client's own
    (httpx2 since huggingface_hub 2, httpx before), which are not OSErrors."""
    from huggingface_hub import errors

    found: list[type[BaseException]] = [
        ConnectionError,  # OfflineModeIsEnabled is one
        TimeoutError,
        socket.gaierror,
        errors.LocalEntryNotFoundError,
    ]
    for client in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(client)
            found += [module.NetworkError, module.TimeoutException, module.RemoteProtocolError]
    return tuple(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_lock(root: Path) -> dict[str, dict]:
    try:
        return json.loads((root / LOCK).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def fill_weights_dir(
    root: str | Path, hub: Hub | None = None, progress: Callable[[str], None] = lambda _line: None
) -> list[str]:
    """Download whatever is missing under `root`; returns the files it fetched (empty if none)."""
    root = Path(root)
    missing = [
        item for item in WEIGHTS if not ((root / item[2]).is_file() and (root / item[2]).stat().st_size > 0)
    ]
    if not missing:
        return []
    hub = hub or HuggingFaceHub()
    hub.reachable()
    lock = _read_lock(root)
    fetched = []
    for repo, filename, dest in missing:
        pinned = lock.get(dest, {}).get("commit") or REVISIONS[repo]
        remote = hub.resolve(repo, filename, pinned)
        size = f", {remote.size / 1e9:.1f} GB" if remote.size else ""
        progress(f"Fetching {dest} from {repo}@{remote.commit[:12]}{size}…")
        staging = root / STAGING / repo.replace("/", "--")
        staging.mkdir(parents=True, exist_ok=True)
        downloaded = hub.download(repo, filename, remote.commit, staging)
        digest = _sha256(downloaded)
        expected = lock.get(dest, {}).get("sha256") or remote.sha256
        if expected and digest != expected:
            downloaded.unlink(missing_ok=True)
            raise WeightsFetchError(
                f"{dest} from {repo} has sha256 {digest[:12]}…, expected {expected[:12]}…: "
                "removed; run it again."
            )
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.move(str(downloaded), partial)
        partial.replace(target)
        lock[dest] = asdict(Remote(remote.commit, digest, target.stat().st_size)) | {"repo": repo}
        (root / LOCK).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
        fetched.append(dest)
        progress(f"{dest}: sha256 {digest[:12]}… ok.")
    shutil.rmtree(root / STAGING, ignore_errors=True)
    return fetched
