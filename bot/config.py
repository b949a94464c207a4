"""Settings from the environment (and `.env`), validated once at start.

Every setting has a default that suits a small server; a bad value is one clear line naming the variable
and what is allowed. Secrets (the Discord token, Modal credentials) are read here and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bot.choices import BACKENDS, DEFAULT_BACKEND
from bot.errors import InvalidInput


class ConfigError(InvalidInput):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    # postgresql://…: the library in PostgreSQL, shared by every process (it may hold a password)
    database_url: str | None = field(default=None, repr=False)
    backend: str = DEFAULT_BACKEND  # one of BACKENDS
    weights_dir: Path | None = None  # for the local backend
    device: str | None = None  # local backend: cuda / cpu (default: cuda when available)
    modal_app: str = "echo-voicebot"
    backend_timeout_s: float = 180.0
    max_text_chars: int = 2000
    max_voices_per_guild: int = 25  # Discord shows at most 25 autocomplete choices
    max_reference_bytes: int = 25 * 1024 * 1024
    discord_token: str | None = field(default=None, repr=False)
    dev_guild_id: int | None = None  # sync commands to this guild only (instant), not globally
    idle_leave_s: float = 300.0  # leave a voice channel after this long with nothing to play
    keep_warm_in_voice: bool = False  # Modal: hold one GPU container up while the bot is in voice
    # For the end-to-end tests' loopback Discord only; never set these against the real Discord.
    discord_api_base: str | None = None
    discord_gateway: str | None = None
    voice_tls_verify: bool = True
    identify_interval_s: float = 5.5  # between two IDENTIFYs of one bucket (Discord's 5 s, and a margin)
    # The speaker's own consent (per-server switch: /settings speaker_consent): how alike the consent voice
    # message and the recording must sound (cosine similarity of speaker embeddings; docs/CONSENT.md
    # says how this default was calibrated), how long a request waits, and how many tries it allows.
    consent_threshold: float = 0.85
    consent_expiry_hours: float = 24.0
    consent_tries: int = 5
    log_format: str = "text"  # or "json": one JSON object per log line (bot.audit.JsonFormatter)
    purge_grace_days: float = 30.0  # a server's data is deleted this long after the bot leaves it
    # `voicebot api`: browser origins allowed to call it (comma-separated, or *); none by default
    api_cors_origins: str | None = None

    def with_overrides(self, **changes: object) -> Config:
        kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **kept)


_ENV = {
    "data_dir": "VOICEBOT_DATA_DIR",
    "database_url": "VOICEBOT_DATABASE_URL",
    "backend": "VOICEBOT_BACKEND",
    "weights_dir": "ECHO_WEIGHTS_DIR",
    "device": "VOICEBOT_DEVICE",
    "modal_app": "ECHO_APP_NAME",
    "backend_timeout_s": "VOICEBOT_BACKEND_TIMEOUT",
    "max_text_chars": "VOICEBOT_MAX_TEXT_CHARS",
    "max_voices_per_guild": "VOICEBOT_MAX_VOICES",
    "max_reference_bytes": "VOICEBOT_MAX_REFERENCE_BYTES",
    "discord_token": "DISCORD_TOKEN",
    "dev_guild_id": "VOICEBOT_DEV_GUILD",
    "idle_leave_s": "VOICEBOT_IDLE_LEAVE",
    "keep_warm_in_voice": "VOICEBOT_KEEP_WARM_IN_VOICE",
    "discord_api_base": "VOICEBOT_DISCORD_API_BASE",
    "discord_gateway": "VOICEBOT_DISCORD_GATEWAY",
    "voice_tls_verify": "VOICEBOT_VOICE_TLS_VERIFY",
    "identify_interval_s": "VOICEBOT_IDENTIFY_INTERVAL",
    "consent_threshold": "VOICEBOT_CONSENT_THRESHOLD",
    "consent_expiry_hours": "VOICEBOT_CONSENT_EXPIRY_HOURS",
    "consent_tries": "VOICEBOT_CONSENT_TRIES",
    "log_format": "VOICEBOT_LOG_FORMAT",
    "purge_grace_days": "VOICEBOT_PURGE_GRACE_DAYS",
    "api_cors_origins": "VOICEBOT_API_CORS_ORIGINS",
}

_LIMITS: dict[str, tuple[float, float]] = {
    "backend_timeout_s": (5, 3600),
    "max_text_chars": (10, 20_000),
    "max_voices_per_guild": (1, 1000),
    "max_reference_bytes": (64 * 1024, 500 * 1024 * 1024),
    "idle_leave_s": (5, 86_400),
    "identify_interval_s": (0.1, 60),
    "purge_grace_days": (0, 3650),
    "consent_threshold": (0.0, 1.0),
    "consent_expiry_hours": (0.0001, 24 * 30),
    "consent_tries": (1, 20),
}


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as python-dotenv reads them (comments, `export `, quotes, escapes)."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


# Read from the process environment only, by Modal's client (MODAL_*), huggingface_hub (HF_*) and the
# Modal app's deploy-time settings (ECHO_*): those set in `.env` are copied there.
SERVICE_PREFIXES = ("MODAL_", "HF_", "ECHO_")


def export_service_credentials(dotenv: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Copy the `SERVICE_PREFIXES` settings of `.env` into the process environment, where their
    readers look; the environment wins. Returns the names copied."""
    copied = [
        key
        for key, value in dotenv.items()
        if key.startswith(SERVICE_PREFIXES) and value and key not in environ
    ]
    for key in copied:
        environ[key] = dotenv[key]
    return copied


def _convert(name: str, var: str, raw: str) -> object:
    kind = {f.name: f.type for f in fields(Config)}[name]
    if "bool" in str(kind):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}={raw!r} is not a yes/no value (use true or false).")
    if name == "database_url" and not raw.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{var} must be a PostgreSQL URL (postgresql://user:password@host:5432/dbname); leave it unset "
            "to keep the library in the data folder."
        )
    if name == "log_format" and raw not in ("text", "json"):
        raise ConfigError(f"{var}={raw!r} is not a log format; use text or json.")
    try:
        if "Path" in str(kind):
            return Path(raw).expanduser()
        if "int" in str(kind):
            value: float = int(raw)
        elif "float" in str(kind):
            value = float(raw)
        else:
            return raw
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number.") from None
    if name in _LIMITS:
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise ConfigError(f"{var} is {raw}; allowed is {low:g} to {high:g}.")
    return value


def load_config(
    env: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"), *, check_backend: bool = True
) -> Config:
    """Environment first, then `.env` for anything the environment leaves unset. `check_backend=False`
    is for commands that make no speech: they don't need the backend's settings to be complete."""
    from_file = read_dotenv(dotenv) if dotenv else {}
    if env is None:
        export_service_credentials(from_file, os.environ)
    merged = dict(from_file)
    merged.update(os.environ if env is None else env)
    values: dict[str, object] = {}
    for name, var in _ENV.items():
        raw = merged.get(var, "").strip()
        if raw:
            values[name] = _convert(name, var, raw)
    config = Config(**values)  # type: ignore[arg-type]
    return check(config) if check_backend else config


def check(config: Config) -> Config:
    if config.backend not in BACKENDS:
        allowed = " or ".join(BACKENDS)
        raise ConfigError(f"VOICEBOT_BACKEND is {config.backend!r}; allowed is {allowed}.")
    if config.backend == "local" and config.weights_dir is None:
        from bot.tts.readiness import no_weights_folder  # the one wording, shared with run and doctor

        raise ConfigError(no_weights_folder().detail)
    return config
