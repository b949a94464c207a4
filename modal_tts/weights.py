"""Fill a weights directory from the two Hugging Face repos, in the layout `EchoEngine.from_dir` reads.

Idempotent: a file already in place is kept, and every download lands under a temporary name and is
renamed when complete, so an interrupted run never leaves a half file where a whole one is expected.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

ECHO_REPO = "jordand/echo-tts-base"
DAC_REPO = "jordand/fish-s1-dac-min"

# (repo, file in the repo, where it goes in the weights directory)
WEIGHTS: tuple[tuple[str, str, str], ...] = (
    (ECHO_REPO, "pytorch_model.safetensors", "echo/pytorch_model.safetensors"),
    (ECHO_REPO, "pca_state.safetensors", "echo/pca_state.safetensors"),
    (DAC_REPO, "pytorch_model.safetensors", "dac/pytorch_model.safetensors"),
)

# (repo_id, filename, directory to download into) -> path of the downloaded file
Downloader = Callable[[str, str, Path], Path]


def hf_download(repo_id: str, filename: str, directory: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, local_dir=directory, token=os.environ.get("HF_TOKEN")))


def fill_weights_dir(root: str | Path, download: Downloader = hf_download) -> list[str]:
    """Download whatever is missing under `root`; returns the files it fetched (empty if none)."""
    root = Path(root)
    fetched = []
    for repo, filename, dest in WEIGHTS:
        target = root / dest
        if target.is_file() and target.stat().st_size > 0:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = root / ".downloading" / repo.replace("/", "--")
        staging.mkdir(parents=True, exist_ok=True)
        downloaded = download(repo, filename, staging)
        partial = target.with_name(target.name + ".partial")
        shutil.move(str(downloaded), partial)
        partial.replace(target)
        fetched.append(dest)
    shutil.rmtree(root / ".downloading", ignore_errors=True)
    return fetched
