"""Every failure the HTTP speech API answers, in OpenAI's error shape.

OpenAI clients read `{"error": {"message", "type", "param", "code"}}` and the HTTP status; the SDKs raise
a typed exception per status (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 429
RateLimitError, 5xx InternalServerError) and show `message`. So one type here carries all four fields, the
status and an optional `Retry-After`, and `body()` is the only place that JSON is made. Messages follow the
bot's rule: what happened and what is allowed, with the actual value.
"""

from __future__ import annotations

import time
from typing import Any

from bot.errors import (
    BackendBusy,
    BackendNotDeployed,
    BackendOutdated,
    BackendTimedOut,
    BackendUnauthorised,
    BackendUnreachable,
    BadReference,
    CooldownActive,
    FileTooLarge,
    InvalidInput,
    InvalidVoiceName,
    LibraryBusy,
    LibraryUnreachable,
    LocalEngineUnavailable,
    NothingToSay,
    QuotaExhausted,
    TextReadsTooLong,
    TextTooLong,
    VoiceBotError,
    VoiceDeleted,
    VoiceNameTaken,
    VoiceNeedsRepair,
    VoiceNotFound,
    VoicePending,
)
from bot.limits import utc_midnight

# OpenAI's error types, by status.
INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
SERVER = "server_error"


class ApiError(Exception):
    """One answer the API gives instead of audio: `status`, OpenAI's `type`, the request field it is
    about (`param`, None for the request as a whole), a machine-readable `code`, and the message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """`Retry-After` in whole seconds (rounded up, at least 1) where the client should come back."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, -int(-self.retry_after // 1)))}


def invalid(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    """400: the request is well-formed JSON but a field is wrong."""
    return ApiError(400, message, param=param, code=code)


def unauthorised(message: str = "") -> ApiError:
    return ApiError(
        401,
        message
        or "Missing or wrong API key. Send `Authorization: Bearer vbk_…`; a server's admins make keys with "
        "/apikey create.",
        type=AUTHENTICATION,
        code="invalid_api_key",
    )


def engine_unavailable(message: str, code: str = "engine_unavailable", retry_after: float = 30.0) -> ApiError:
    return ApiError(503, message, type=SERVER, code=code, retry_after=retry_after)


def from_error(exc: VoiceBotError, *, now: float | None = None) -> ApiError:
    """The one place a bot error becomes an API answer: its status, type and code. Messages that name
    Discord commands are said in the API's terms; the rest are the bot's own words."""
    now = time.time() if now is None else now
    if isinstance(exc, VoiceNotFound | VoiceDeleted):
        return ApiError(
            404,
            f"No voice named or with id {exc.name!r} in this key's server. GET /v1/audio/voices lists them.",
            type=NOT_FOUND,
            param="voice",
            code="voice_not_found",
        )
    if isinstance(exc, CooldownActive):
        return ApiError(
            429,
            f"Slow down a little: this key's member may speak again in {max(1, round(exc.seconds_left))} s.",
            type=RATE_LIMIT,
            code="cooldown",
            retry_after=exc.seconds_left,
        )
    if isinstance(exc, QuotaExhausted):
        tomorrow = utc_midnight(now) + 86400
        return ApiError(429, exc.message, type=RATE_LIMIT, code="daily_quota", retry_after=tomorrow - now)
    if isinstance(exc, TextTooLong | TextReadsTooLong | NothingToSay):
        return ApiError(400, exc.message, param="input", code="invalid_input")
    if isinstance(exc, VoicePending):
        return ApiError(409, exc.message, param="voice", code="voice_pending_consent")
    if isinstance(exc, FileTooLarge):
        return ApiError(413, exc.message, param="audio_sample", code="file_too_large")
    if isinstance(exc, BadReference):
        return ApiError(400, exc.message, param="audio_sample", code="bad_audio_sample")
    if isinstance(exc, InvalidVoiceName | VoiceNameTaken):
        return ApiError(400, exc.message, param="name", code="invalid_name")
    if isinstance(exc, BackendBusy):
        return engine_unavailable(exc.message, "engine_busy", retry_after=5)
    if isinstance(exc, VoiceNeedsRepair):
        return engine_unavailable(exc.message, "voice_repairing", retry_after=60)
    if isinstance(exc, BackendTimedOut):
        return engine_unavailable(exc.message, "engine_timeout", retry_after=10)
    if isinstance(exc, BackendNotDeployed | BackendOutdated | BackendUnauthorised | LocalEngineUnavailable):
        return engine_unavailable(exc.message)
    if isinstance(exc, BackendUnreachable):
        return engine_unavailable(exc.message, retry_after=30)
    if isinstance(exc, LibraryBusy | LibraryUnreachable):
        return engine_unavailable(exc.message, "library_unavailable", retry_after=5)
    if isinstance(exc, InvalidInput):
        return ApiError(400, exc.message, code="invalid_request")
    return ApiError(500, exc.message, type=SERVER, code="server_error")
