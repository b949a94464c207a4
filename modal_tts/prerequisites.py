"""What the engine needs on a machine before it can load: the `engine` extra's packages and a weights
folder in the Hugging Face layout.

Light on purpose (no torch, no engine import), so the bot, the CLI and this package's own scripts can
check first and name the fix in one line instead of failing deep inside an import.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

INSTALL_ENGINE = "uv sync --locked --extra engine"
# The extra's packages that the engine imports (huggingface_hub comes with echo-tts).
ENGINE_PACKAGES = ("torch", "torchaudio", "safetensors", "echo_tts", "huggingface_hub")

# The weights folder: the two Hugging Face repos' files, plus config.json for non-default sizes.
ECHO_WEIGHTS = "echo/pytorch_model.safetensors"
PCA_STATE = "echo/pca_state.safetensors"
DAC_WEIGHTS = "dac/pytorch_model.safetensors"
CONFIG = "config.json"
WEIGHT_FILES = (ECHO_WEIGHTS, PCA_STATE, DAC_WEIGHTS)


def missing_packages() -> list[str]:
    """The engine extra's packages this Python can't import (empty when the extra is installed)."""
    return [name for name in ENGINE_PACKAGES if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-removed module
        return False


def is_missing_engine(exc: BaseException) -> bool:
    """`exc` is an import of one of the engine extra's packages failing (the extra isn't installed)."""
    return isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ENGINE_PACKAGES


def needs_the_extra(what: str, missing: list[str]) -> str:
    return f"{what} needs the engine extra (torch, echo-tts; missing here: {', '.join(missing)})"


def run_install() -> str:
    return f"run `{INSTALL_ENGINE}`."


def not_installed(what: str, missing: list[str]) -> str:
    """One line: `what` needs the engine extra, which packages are missing, and the command that fixes it."""
    return f"{needs_the_extra(what, missing)}: {run_install()}"


def missing_weight_files(folder: Path) -> list[str]:
    """The weights files `folder` lacks, in the layout `EchoEngine.from_dir` reads."""
    return [name for name in WEIGHT_FILES if not (folder / name).is_file()]


@contextlib.contextmanager
def engine_imports(command: str) -> Iterator[None]:
    """Around a script's torch / echo-tts imports: without the extra, exit 2 with one line naming the
    fix, not a traceback ending in ModuleNotFoundError."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if not is_missing_engine(exc):
            raise
        print(not_installed(command, missing_packages() or [exc.name or "?"]), file=sys.stderr)
        raise SystemExit(2) from None
