"""`voicebot deploy`: deploy the Modal app, fill its weights Volume, and show that it answers.

The app reads its settings (`ECHO_*`) from the environment when `modal_tts/app.py` is imported, so the
flags here set those variables and then import it. Everything that talks to Modal sits behind `Cloud`,
which tests replace with a fake.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from bot.cli_common import Progress
from bot.wording import plural

# flag, variable, documented default (modal_tts/app.py), help
SETTINGS: tuple[tuple[str, str, str, str], ...] = (
    ("--app-name", "ECHO_APP_NAME", "echo-voicebot", "name of the Modal app the bot calls"),
    ("--gpu", "ECHO_GPU", "L40S", "GPU type: L40S, H100, A100, L4, …"),
    ("--scaledown-window", "ECHO_SCALEDOWN_WINDOW", "120", "seconds an idle container stays up"),
    ("--min-containers", "ECHO_MIN_CONTAINERS", "0", "containers kept up always (1 removes cold starts)"),
    ("--max-containers", "ECHO_MAX_CONTAINERS", "2", "ceiling on containers, and so on spend"),
    ("--timeout", "ECHO_TIMEOUT", "300", "seconds one call may run"),
    ("--max-inputs", "ECHO_MAX_INPUTS", "16", "requests one container takes at once"),
    ("--target-inputs", "ECHO_TARGET_INPUTS", "8", "inputs per container before the autoscaler adds one"),
    ("--cpu", "ECHO_CPU", "4", "CPU cores reserved per container"),
    ("--max-batch", "ECHO_MAX_BATCH", "8", "rows per sampler call"),
    ("--fastpath", "ECHO_FASTPATH", "graphs", "graphs (CUDA graphs captured at start) or off"),
)


class DeployFailed(Exception):
    """One line for the terminal; `exit_code` 2 for a setup problem, 1 when Modal failed."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


class Cloud(Protocol):
    def deploy(self, env: dict[str, str]) -> None: ...
    def fill_weights(self, app_name: str) -> list[str]: ...
    def info(self, app_name: str) -> dict[str, Any]: ...


class ModalCloud:
    """The real Modal, through its Python API."""

    def deploy(self, env: dict[str, str]) -> None:
        import importlib

        import modal

        os.environ.update(env)
        import modal_tts.app as module

        module = importlib.reload(module)  # its settings are read at import: read them again
        with modal.enable_output():
            module.app.deploy(name=env["ECHO_APP_NAME"])

    def fill_weights(self, app_name: str) -> list[str]:
        import modal

        return list(modal.Function.from_name(app_name, "download_weights").remote())

    def info(self, app_name: str) -> dict[str, Any]:
        import modal

        return dict(modal.Cls.from_name(app_name, "EchoTTS")().info.remote())


def modal_credentials(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET"):
        return True
    return os.path.isfile(os.path.expanduser(environ.get("MODAL_CONFIG_PATH", "~/.modal.toml")))


def _modal_error(exc: BaseException) -> DeployFailed | None:
    try:
        import modal.exception as errors
    except ImportError:
        return None
    if isinstance(exc, errors.AuthError):
        return DeployFailed(
            "Modal rejected the credentials: run `uv run modal token new` (or fix MODAL_TOKEN_ID/SECRET)."
        )
    if isinstance(exc, errors.ConnectionError | ConnectionError | OSError):
        return DeployFailed(
            f"Can't reach Modal ({exc}). Check the network, then run `voicebot deploy` again."
        )
    if isinstance(exc, errors.Error):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DeployFailed(f"Modal failed: {first}")
    return None


def deploy(
    args: argparse.Namespace,
    cloud: Cloud | None = None,
    clock: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Deploy, fill the Volume, call `info` once; what was learned (also what --json prints)."""
    if cloud is None:
        if not modal_credentials():
            raise DeployFailed(
                "No Modal credentials: run `uv run modal token new`, or set MODAL_TOKEN_ID and "
                "MODAL_TOKEN_SECRET.",
                2,
            )
        cloud = ModalCloud()
    progress = progress or Progress()
    env = {var: str(getattr(args, flag[2:].replace("-", "_"))) for flag, var, _, _ in SETTINGS}
    app_name = env["ECHO_APP_NAME"]
    try:
        progress(f"Deploying {app_name} (GPU {env['ECHO_GPU']})…")
        cloud.deploy(env)
        progress("Filling the weights Volume (first deploy downloads about 6 GB)…")
        fetched = cloud.fill_weights(app_name)
        progress("Calling info() once: this is a cold start…")
        started = clock()
        info = cloud.info(app_name)
        cold_start_s = clock() - started
    except DeployFailed:
        raise
    except Exception as exc:
        mapped = _modal_error(exc)
        if mapped is None:
            raise
        raise mapped from None
    return {
        "app": app_name,
        "gpu": info.get("gpu") or env["ECHO_GPU"],
        "device_name": info.get("device_name"),
        "revision": info.get("revision"),
        "weights_fetched": fetched,
        "cold_start_s": round(cold_start_s, 1),
        "settings": env,
    }


def run(
    args: argparse.Namespace, cloud: Cloud | None = None, clock: Callable[[], float] = time.monotonic
) -> int:
    try:
        result = deploy(args, cloud, clock)
    except DeployFailed as exc:
        print(f"voicebot: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        import json

        print(json.dumps(result, indent=2))
        return 0
    weights = (
        f"fetched {plural(len(result['weights_fetched']), 'file')}"
        if result["weights_fetched"]
        else "already filled"
    )
    print(f"Deployed {result['app']} on {result['gpu']} ({result['device_name'] or 'GPU name unknown'}).")
    print(f"Weights Volume: {weights}. Model revision {result['revision']}.")
    print(f"First call answered in {result['cold_start_s']:.1f} s (a cold start; warm calls skip it).")
    return 0


def add_parser(commands: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "deploy",
        help="deploy the Modal GPU app, fill its weights, show GPU, revision and cold start",
        description="Deploy modal_tts/app.py to Modal. Each flag's default is its ECHO_* variable, "
        "else the documented default.",
    )
    for flag, var, default, about in SETTINGS:
        value = os.environ.get(var) or default
        kind = float if var == "ECHO_CPU" else str if not default.isdigit() else int
        extra: dict[str, Any] = {"choices": ("graphs", "off")} if var == "ECHO_FASTPATH" else {}
        parser.add_argument(
            flag, type=kind, default=kind(value), help=f"{about} (${var}; default {default})", **extra
        )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(handler=run)
