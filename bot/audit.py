"""The audit trail: one structured log line for each clone, consent, delete, forget, purge and settings
change (and each API key event), naming who did it, where, and which voice.

Lines go to the `voicebot.audit` logger at INFO, whatever the level of the rest of the bot's logging, so
an operator always has them: `audit clone actor=… guild=… voice=… name='Ada'`. With
`VOICEBOT_LOG_FORMAT=json` every log line, these included, is one JSON object (`JsonFormatter`), with
the audit fields as keys, for operators who ship logs.

Nothing secret or personal beyond Discord ids and voice names goes in: never a token, a key, text that
was spoken, or audio.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("voicebot.audit")
log.setLevel(logging.INFO)

LOG_FORMATS = ("text", "json")
EVENTS = (
    "clone",
    "consent_requested",
    "consent_given",
    "consent_refused",
    "consent_expired",
    "delete",
    "forget",
    "purge",
    "settings",
    "reencode",
    "apikey",
)


def record(
    event: str,
    *,
    actor: int | str | None,
    guild: int | None,
    voice: Any = None,
    **details: Any,
) -> dict[str, Any]:
    """Write one audit line and return its fields. `actor`: the Discord id who did it, or a word for
    who else did ("cli", "bot", "expiry"); `guild`: where (None for every server); `voice`: a voice id."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    fields: dict[str, Any] = {"event": event, "actor": actor, "guild": guild}
    if voice is not None:
        fields["voice"] = voice
    fields.update({key: value for key, value in details.items() if value is not None})
    text = " ".join(
        f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}" for key, value in fields.items()
    )
    log.info("audit %s", text, extra={"audit": fields})
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, process, an optional
    label (the process's shards), the audit fields of an audit line, and the traceback if any."""

    def __init__(self, label: str | None = None) -> None:
        super().__init__()
        self.label = label

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if self.label:
            line["label"] = self.label
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            line["audit"] = audit
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def formatter(log_format: str, label: str | None = None) -> logging.Formatter:
    """The formatter every handler of the bot uses: plain text (the default) or JSON lines."""
    if log_format == "json":
        return JsonFormatter(label)
    where = f" [{label}, pid %(process)d]" if label else ""
    return logging.Formatter(f"%(levelname)s{where} %(name)s: %(message)s")


def use_format(log_format: str, label: str | None = None) -> None:
    """Give every root handler the chosen format (after logging.basicConfig)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(log_format, label))
