"""The README's commands do what it says: CI runs its test command, and its offline trial runs as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import av
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_block_after(marker: str) -> list[str]:
    at = README.index(marker)
    block = re.search(r"```bash\n(.*?)```", README[at:], re.DOTALL)
    assert block, f"no bash block after {marker!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    (command,) = _bash_block_after("Set up and run the whole test suite")
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command
    for check in ("uv run ruff check .", "uv run ruff format --check .", "uv run mypy", "uv run pytest"):
        assert check in command.split(" && ")


@pytest.mark.slow
def test_the_offline_trial_runs_as_written_and_leaves_everything_under_data(tmp_path: Path) -> None:
    lines = _bash_block_after("No Discord and no GPU at hand?")
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEBOT_", "ECHO_"))}
    for line in lines:
        line = line.removeprefix("uv sync --locked --extra engine && ")  # this test's venv is that one
        argv = shlex.split(line)
        assert argv[:2] == ["uv", "run"], line
        program = argv[2] if argv[2] != "python" else Path(sys.executable).name
        done = subprocess.run(
            [str(venv_bin / program), *argv[3:]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    assert {p.name for p in tmp_path.iterdir()} == {"data"}
    with av.open(str(tmp_path / "data" / "hello.ogg")) as container:
        stream = container.streams.audio[0]
        seconds = sum(frame.samples for frame in container.decode(stream)) / stream.rate
    assert seconds > 0.2
