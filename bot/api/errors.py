"""Every failure the HTTP speech API answers, in OpenAI's error shape.

OpenAI clients read `{"error": {"message", "type", "param", "code"}}` and the HTTP status; the SDKs raise
a typed exception per status (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 429
RateLimitError, 5xx InternalServerError) and show `message`. So one type here carries all four fields, the
status and an optional `Retry-After`, and `body()` is the only place that JSON is made. Messages follow the
bot's rule: what happened and what is allowed, with the actual value.
"""

from __future__ import annotations

from typing import Any

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
