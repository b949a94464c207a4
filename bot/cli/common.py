"""What every `voicebot` command shares: the library and backend it opens, progress lines on stderr,
writing an output file or JSON, and the terminal's wording of the bot's errors."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config, check, load_config
from bot.errors import (
    ApiKeyNameTaken,
    ApiKeyNotFound,
    BackendFailed,
    BackendNotDeployed,
    BackendOutdated,
    BackendUnauthorised,
    BackendUnreachable,
    ConsentRequired,
    DictionaryEntryNotFound,
    DictionaryFull,
    FileTooLarge,
    InvalidInput,
    LocalEngineUnavailable,
    ModalCredentialsMissing,
    NoDefaultVoice,
    OutputNotWritable,
    ReferenceTooLong,
    ReferenceTooShort,
    TextTooLong,
    TooManyApiKeys,
    VoiceBotError,
    VoiceLimitReached,
    VoiceNameTaken,
    VoiceNotFound,
    VoicesFolderMissing,
    fmt_bytes,
    fmt_seconds,
)
from bot.store import VoiceLibrary, open_library
from bot.wording import plural

if TYPE_CHECKING:
    from bot.tts.base import TTSBackend

CLIP_LIMITS = "a reference must be 5 s to 5 min long"  # the one phrasing of the clip limits


# --- what a command opens ----------------------------------------------------------------------


def config_for(args: argparse.Namespace, *, needs_backend: bool) -> Config:
    """Settings with the command line's overrides. Only commands that make speech check the backend's
    own settings, so `voices` works on a machine set up for a backend it doesn't have."""
    config = load_config(check_backend=False).with_overrides(
        data_dir=getattr(args, "data_dir", None),
        backend=getattr(args, "backend", None),
        weights_dir=getattr(args, "weights", None),
        device=getattr(args, "device", None),
    )
    if needs_backend:  # a command that makes speech: its backend's setup first, before any work
        from bot.tts.readiness import check_setup

        check_setup(check(config).backend, config.weights_dir)
    return config


def create_backend(config: Config, *, timeout: float | None = None) -> TTSBackend:
    """The configured speech backend; `timeout` caps its per-request timeout."""
    from bot.tts import create_backend as create

    return create(
        config.backend,
        weights_dir=config.weights_dir,
        device=config.device,
        app_name=config.modal_app,
        timeout=min(config.backend_timeout_s, timeout or config.backend_timeout_s),
    )


def library_exists(config: Config) -> bool:
    """Whether there is a library to read: a SQLite file, or a PostgreSQL database a writer set up."""
    if config.database_url:
        from bot.store.postgres import holds_library

        return holds_library(config.database_url)
    return (config.data_dir / "voicebot.db").exists()


def open_store(config: Config, *, writes: bool) -> VoiceLibrary:
    """`writes=False` for commands that promise to change nothing: no sweep, no repair, and an older
    library is read through an upgraded copy in memory instead of being migrated on disk."""
    return open_library(
        config.data_dir,
        config.database_url,
        max_voices_per_guild=config.max_voices_per_guild,
        read_only=not writes,
    )


# --- progress --------------------------------------------------------------------------------


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """`voicebot: …` lines on stderr while long work runs; silent unless stderr is a terminal, so logs
    and scripts see only the result."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = stderr_is_terminal() if enabled is None else enabled

    def __call__(self, line: str) -> None:
        if self.enabled:
            print(f"voicebot: {line}", file=sys.stderr, flush=True)


# --- writing an output file ------------------------------------------------------------------


def _output_error(path: Path, exc: OSError) -> OutputNotWritable:
    if path.is_dir():
        return OutputNotWritable(path, "it is a folder")
    reason = exc.strerror or str(exc)
    return OutputNotWritable(path, reason[0].lower() + reason[1:])  # "Permission denied" mid-sentence


def _special(target: Path) -> bool:
    """A device or pipe (`--out /dev/null`, a FIFO): written in place, never replaced by a file."""
    return target.exists() and not target.is_file() and not target.is_dir()


def check_writable(path: Path) -> None:
    """Refuse an --out that can't be written before any work is done for it (creating nothing)."""
    target = Path(os.path.realpath(path))  # through a symlink: its target is what gets written
    if target.is_dir():
        raise OutputNotWritable(path, "it is a folder")
    if not target.parent.exists():
        raise OutputNotWritable(path, f"there is no folder {path.parent}")
    if not target.parent.is_dir():
        raise OutputNotWritable(path, f"{path.parent} is a file, not a folder")
    try:
        if _special(target):
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".voicebot-", suffix=".part"):
            pass
    except OSError as exc:
        raise _output_error(path, exc) from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all: a temporary file beside it, then renamed over it.
    A symlink is written through (to its target); a device or pipe is written in place."""
    target = Path(os.path.realpath(path))
    if _special(target):
        try:
            with open(target, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise _output_error(path, exc) from None
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the user expects a normal file
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# --- the terminal's wording ------------------------------------------------------------------


def terminal_message(exc: VoiceBotError, args: argparse.Namespace) -> str:
    """The error as a terminal user reads it: guild ids and `voicebot` commands where Discord members
    read "this server" and slash commands. Discord's wording stays in `bot.errors`."""
    guild = getattr(args, "guild", None)
    where = f"Guild {guild}" if guild else "This guild"
    if isinstance(exc, VoiceNotFound):
        listing = f"voicebot voices --guild {guild}" if guild else "voicebot voices --guild G"
        return f"{where} has no voice called “{exc.name[:40]}”. See the list with `{listing}`."
    if isinstance(exc, VoiceNameTaken):
        instead = {
            "import": "Import with --rename to add it as “NAME-2”",
            "voice": "Pick another new name",
        }.get(getattr(args, "command", ""), "Pick another --name")
        return f"{where} already has a voice called “{exc.name}”. {instead}, or delete that one."
    if isinstance(exc, VoiceLimitReached):
        return (
            f"{where} has reached its limit of {plural(exc.limit, 'voice')} (VOICEBOT_MAX_VOICES). "
            "Delete one with `voicebot delete` first."
        )
    if isinstance(exc, DictionaryEntryNotFound):
        listing = f"voicebot dictionary list --guild {guild}" if guild else "voicebot dictionary list"
        return f"{where}'s dictionary has no entry for “{exc.word}”. See it with `{listing}`."
    if isinstance(exc, ApiKeyNotFound):
        listing = f"voicebot apikey list --guild {guild}" if guild else "voicebot apikey list --guild G"
        return f"{where} has no API key called “{exc.key[:64]}”. See them with `{listing}`."
    if isinstance(exc, ApiKeyNameTaken):
        return f"{where} already has an API key called “{exc.name}”. Pick another --name, or revoke that one."
    if isinstance(exc, TooManyApiKeys):
        return (
            f"{where} has reached its limit of {plural(exc.limit, 'API key')}. Revoke one with "
            "`voicebot apikey revoke` first."
        )
    if isinstance(exc, ReferenceTooShort | ReferenceTooLong):
        return f"That clip is {fmt_seconds(exc.seconds)} long; {CLIP_LIMITS}."
    if isinstance(exc, FileTooLarge):
        return (
            f"That file is {fmt_bytes(exc.size)}; a reference file can be at most {fmt_bytes(exc.limit)} "
            "(VOICEBOT_MAX_REFERENCE_BYTES). Trim it or compress it to MP3 or Ogg."
        )
    if isinstance(exc, ConsentRequired):
        return "A voice can only be cloned with its speaker's permission: confirm it with --consent USER_ID."
    if isinstance(exc, NoDefaultVoice):
        return "Pick a voice with --voice NAME_OR_ID."
    if isinstance(exc, DictionaryFull):
        return f"{where}'s pronunciation dictionary is full ({exc.limit} entries). Remove one first."
    if isinstance(exc, VoicesFolderMissing):
        return (
            f"The folder {exc.path} is missing, but the library lists {plural(exc.voices, 'voice')}: is "
            "its volume mounted? Nothing was deleted; put the folder back and try again."
        )
    if isinstance(exc, BackendNotDeployed):
        return "The Modal app isn't deployed. Deploy it with `voicebot deploy`, then try again."
    if isinstance(exc, BackendOutdated):
        return (
            "The deployed Modal app is from another version of this bot. Redeploy it with `voicebot deploy`, "
            "then try again."
        )
    if isinstance(exc, LocalEngineUnavailable):
        return exc.detail
    if isinstance(exc, ModalCredentialsMissing):
        return exc.admin_message
    if isinstance(exc, BackendUnauthorised):
        return (
            "Modal rejected the credentials: run `uv run modal token new`, or fix MODAL_TOKEN_ID and "
            "MODAL_TOKEN_SECRET (in the environment or .env)."
        )
    if isinstance(exc, BackendUnreachable):
        return f"Can't reach Modal ({exc.detail.rstrip('.')}). Check the network, then try again."
    if isinstance(exc, BackendFailed):
        return (
            f"The speech backend failed ({exc.detail.rstrip('.')}). Try again; `voicebot doctor` checks "
            "the setup."
        )
    if isinstance(exc, TextTooLong):
        return (
            f"That text is {exc.length:,} characters long; the limit (VOICEBOT_MAX_TEXT_CHARS) is "
            f"{exc.limit:,}. Shorten it or say it in several parts."
        )
    message = getattr(exc, "admin_message", None) or exc.message
    message = message.replace("This server", where).replace("this server", where.lower())
    message = message.replace("Send a recording", "Use a recording").replace("Send a file", "Use a file")
    hint = getattr(exc, "admin_hint", "")
    return f"{message} {hint}".rstrip() if hint and not isinstance(exc, InvalidInput) else message
