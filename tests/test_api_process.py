"""`voicebot api` as a user runs it: the console script in its own process, the library made with
`voicebot clone` and `voicebot apikey create`, the tiny model on the CPU, and the official `openai`
client on the other end of a loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests import media
from tests.machine import closed_port
from tests.test_api_server import decoded

VOICEBOT = Path(sys.executable).parent / "voicebot"  # the console script, as installed
GUILD, ADMIN = 1001, 42
KEY = re.compile(r"vbk_[0-9a-f]{12}_[0-9a-f]{64}\n")
# aiohttp's default access log format: '%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"'
ACCESS_LOG = re.compile(r'bot\.api\.server: 127\.0\.0\.1 \[[^]]+\] "POST /v1/audio/speech HTTP/1\.1" (\d+) ')


def voicebot_env(data_dir: Path) -> dict[str, str]:
    """The environment of an admin's shell: none of this machine's own settings, the library in data_dir."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VOICEBOT_", "DISCORD_", "ECHO_", "MODAL_"))
    }
    env["VOICEBOT_DATA_DIR"] = str(data_dir)
    return env


def voicebot(env: dict[str, str], cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VOICEBOT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    """Poll /healthz until it answers 200; a process that exits first fails the test with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"voicebot api exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"voicebot api wasn't healthy within {timeout:g} s:\n{log.read_text()}")


@pytest.mark.slow
def test_voicebot_api_serves_the_openai_client_and_stops_on_sigterm(tmp_path: Path, tiny_model_dir: Path):
    env = voicebot_env(tmp_path / "data")
    speech = ("--backend", "local", "--weights", str(tiny_model_dir), "--device", "cpu")
    clip = tmp_path / "ann.wav"
    clip.write_bytes(media.encode(media.speech_like(6.0), "wav"))
    cloned = voicebot(env, tmp_path, "clone", "--guild", str(GUILD), "--name", "Ann", "--consent", str(ADMIN),
                      str(clip), *speech)  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    made = voicebot(env, tmp_path, "apikey", "create", "--guild", str(GUILD))
    assert made.returncode == 0, made.stderr
    assert KEY.fullmatch(made.stdout), made.stdout
    key = made.stdout.strip()

    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    with log.open("wb") as logs:
        process = subprocess.Popen(
            [str(VOICEBOT), "api", "--port", str(port), *speech],
            env=env,
            cwd=tmp_path,
            stdout=logs,
            stderr=logs,
        )
    try:
        wait_until_healthy(process, url, log)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)
        said = client.audio.speech.create(
            model="tts-1", voice="Ann", input="Hello from the API.", response_format="wav"
        )
        pcm, rate = decoded(said.content)
        assert pcm.size / rate > 0.5
        wrong = key[:-1] + ("0" if key[-1] != "0" else "1")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key=wrong, max_retries=0).audio.speech.create(
                model="tts-1", voice="Ann", input="Hello from the API."
            )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    logged = log.read_text()
    assert code == 0, logged
    assert "Traceback" not in logged
    # keys are never logged, in full or in part; each request is, by its request line
    assert key not in logged and key.split("_")[2] not in logged
    assert ACCESS_LOG.findall(logged) == ["200", "401"], logged


@pytest.mark.slow
def test_a_port_out_of_range_or_taken_is_one_line(tmp_path: Path, tiny_model_dir: Path):
    env = voicebot_env(tmp_path / "data")
    out_of_range = voicebot(env, tmp_path, "api", "--port", "70000")
    assert out_of_range.returncode == 2
    assert out_of_range.stderr.count("\n") == 1 and "70000" in out_of_range.stderr, out_of_range.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = voicebot(env, tmp_path, "api", "--port", str(port), "--backend", "local", "--weights",
                           str(tiny_model_dir), "--device", "cpu", timeout=120)  # fmt: skip
    assert refused.returncode != 0
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"voicebot: Can't listen on 127.0.0.1:{port}: ") and "in use" in line, line
