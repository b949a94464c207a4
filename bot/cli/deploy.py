"""`voicebot deploy`: deploy the Modal app, fill its weights Volume, and show that it answers.

The app reads its settings (`ECHO_*`) from the environment when `modal_tts/app.py` is imported, so the
flags here set those variables and then import it. Each setting is read and checked only when `deploy`
runs (flag, else variable, else default), so a bad one in `.env` never stops another command.
Everything that talks to Modal sits behind `Cloud`, which tests replace with a fake.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bot.cli.common import Progress, terminal_message
from bot.cli.options import examples, json_option
from bot.errors import BackendUnauthorised, ModalCredentialsMissing
from bot.tts import readiness
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
# modal_tts.fastpath.BATCH_SIZES[-1]: that module needs torch, which the bot doesn't install (a test checks)
LARGEST_BATCH = 8
# variable: (lowest, highest, unit): what Modal accepts; max_batch: the largest batch fastpath captures
WHOLE: dict[str, tuple[int, float, str]] = {
    "ECHO_SCALEDOWN_WINDOW": (2, 3600, " of seconds"),
    "ECHO_MIN_CONTAINERS": (0, math.inf, ""),
    "ECHO_MAX_CONTAINERS": (1, math.inf, ""),
    "ECHO_TIMEOUT": (1, 86400, " of seconds"),
    "ECHO_MAX_INPUTS": (1, math.inf, ""),
    "ECHO_TARGET_INPUTS": (1, math.inf, ""),
    "ECHO_MAX_BATCH": (1, LARGEST_BATCH, ""),
}
ALLOWED = {
    "ECHO_APP_NAME": "1 to 64 letters, digits, '-', '_' or '.' (Modal's rule for app names)",
    "ECHO_GPU": "a GPU type such as L40S, H100, A100 or L4",
    "ECHO_CPU": "a number of CPU cores above 0, such as 4 or 0.5",
    "ECHO_FASTPATH": "graphs or off",
} | {
    var: f"a whole number{unit} from {low}" + (" up" if high == math.inf else f" to {high:.0f}")
    for var, (low, high, unit) in WHOLE.items()
}
# (lower, upper): Modal refuses max_containers below min_containers, and target_inputs above max_inputs
ORDERED = (("ECHO_MIN_CONTAINERS", "ECHO_MAX_CONTAINERS"), ("ECHO_TARGET_INPUTS", "ECHO_MAX_INPUTS"))
# Modal's rule for app names (modal/_utils/name_utils.py), app ids excluded
APP_NAME = re.compile(r"(?!ap-[a-zA-Z0-9]{22}$)[a-zA-Z0-9._-]{1,64}")
FLAGS = {var: flag for flag, var, _, _ in SETTINGS}


class DeployFailed(Exception):
    """One line for the terminal; `exit_code` 2 for a setup problem, 1 when Modal failed."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def _value(var: str, raw: str) -> Any:
    """`raw` as Modal takes it, or None where Modal (or the fast path) would refuse it."""
    text = raw.strip()
    if var in WHOLE:
        low, high, _ = WHOLE[var]
        whole = re.fullmatch(r"\d+", text, re.ASCII) is not None
        return int(text) if whole and low <= int(text) <= high else None
    if var == "ECHO_CPU":
        try:
            cores = float(text)
        except ValueError:
            return None
        return cores if math.isfinite(cores) and cores > 0 else None
    allowed = {
        "ECHO_APP_NAME": APP_NAME.fullmatch(raw) is not None,
        "ECHO_GPU": bool(text),
        "ECHO_FASTPATH": raw in ("graphs", "off"),
    }
    return text if allowed[var] else None


def _not_allowed(var: str, raw: str, from_flag: bool, allowed: str) -> DeployFailed:
    flag = FLAGS[var]
    if from_flag:
        return DeployFailed(f"{flag} is {raw!r}; allowed is {allowed}.", 2)
    return DeployFailed(
        f"{var} is {raw!r} in the environment or .env; allowed is {allowed}. Fix it, or pass {flag}.", 2
    )


def settings(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Each `ECHO_*` setting from its flag, else the environment (where `.env`'s are copied), else its
    documented default, checked as Modal checks it: DeployFailed (exit 2) names the first it would refuse."""
    raws, values, given = {}, {}, {}
    for flag, var, default, _ in SETTINGS:
        flag_value = getattr(args, flag[2:].replace("-", "_"), None)
        given[var] = "flag" if flag_value is not None else "env" if environ.get(var) else "default"
        raws[var] = flag_value if flag_value is not None else environ.get(var) or default
        values[var] = _value(var, raws[var])
        if values[var] is None:
            raise _not_allowed(var, raws[var], given[var] == "flag", ALLOWED[var])
    for lower, upper in ORDERED:
        if values[lower] > values[upper]:
            # Blame the one that was set (both defaults agree); the upper one when both were
            if given[upper] != "default":
                allowed = f"at least {FLAGS[lower][2:].replace('-', ' ')} ({values[lower]})"
                raise _not_allowed(upper, raws[upper], given[upper] == "flag", allowed)
            allowed = f"at most {FLAGS[upper][2:].replace('-', ' ')} ({values[upper]})"
            raise _not_allowed(lower, raws[lower], given[lower] == "flag", allowed)
    return {var: str(value) for var, value in values.items()}


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


def _failure(exc: Exception, step: str) -> DeployFailed:
    """Whatever went wrong while talking to Modal, as one line: a deploy never ends in a traceback."""
    import modal.exception as errors

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, errors.AuthError):
        return DeployFailed(terminal_message(BackendUnauthorised(first), argparse.Namespace()))
    # ConnectionResetError, TimeoutError (asyncio's too) and socket.gaierror are all OSErrors
    if isinstance(exc, errors.ConnectionError | OSError):
        reason = getattr(exc, "strerror", None) or first
        return DeployFailed(
            f"Can't reach Modal while {step} ({reason}). Check the network, then run `voicebot deploy` again."
        )
    if isinstance(exc, errors.Error):
        return DeployFailed(f"Modal failed while {step}: {first}")
    return DeployFailed(f"Deploy failed while {step}: {type(exc).__name__}: {first}")


def deploy(
    args: argparse.Namespace,
    cloud: Cloud | None = None,
    clock: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Deploy, fill the Volume, call `info` once; what was learned (also what --json prints)."""
    env = settings(args)
    # Deploying takes minutes: its steps always show, on stderr (stdout keeps the result or --json).
    progress = progress or Progress(enabled=True)
    if cloud is None:
        if not readiness.modal_credentials():
            raise DeployFailed(ModalCredentialsMissing().admin_message, 2)
        progress("Checking that Modal answers…")
        # Offline, Modal's client retries for about a minute before it says so: a plain connect is seconds.
        if unreachable := readiness.modal_unreachable():
            raise DeployFailed(f"{unreachable}: check the network, then run `voicebot deploy` again.")
        cloud = ModalCloud()
    app_name = env["ECHO_APP_NAME"]
    step = f"deploying {app_name}"
    try:
        progress(f"Deploying {app_name} (GPU {env['ECHO_GPU']})…")
        cloud.deploy(env)
        step = "filling the weights Volume"
        progress("Filling the weights Volume (first deploy downloads about 6 GB)…")
        fetched = cloud.fill_weights(app_name)
        step = "calling info()"
        progress("Calling info() once: this is a cold start…")
        started = clock()
        info = cloud.info(app_name)
        cold_start_s = clock() - started
    except DeployFailed:
        raise
    except Exception as exc:
        raise _failure(exc, step) from None
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
    # Modal's progress (`modal.enable_output()`) prints on stdout: with --json, stdout holds only the JSON
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
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


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "deploy",
        help="deploy the Modal GPU app, fill its weights, show GPU, revision and cold start",
        description="Deploy modal_tts/app.py to Modal. Each flag's default is its ECHO_* variable, "
        "else the documented default.",
        epilog=examples("voicebot deploy", "voicebot deploy --gpu H100 --min-containers 1 --json"),
    )
    names = {"ECHO_APP_NAME": "NAME", "ECHO_GPU": "GPU", "ECHO_CPU": "CORES", "ECHO_FASTPATH": "MODE"}
    for flag, var, default, about in SETTINGS:
        metavar = names.get(var) or ("S" if "seconds" in ALLOWED[var] else "N")
        # No default: `settings` reads and checks the variable when deploy runs, not for every command
        parser.add_argument(flag, metavar=metavar, help=f"{about} (${var}; default {default})")
    json_option(parser)
    parser.set_defaults(handler=run)
