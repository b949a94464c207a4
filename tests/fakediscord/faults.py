"""On-demand REST faults: a test arms one for the next N matching requests.

Kinds and what discord.py 2.7 does with them:

* ``"429"`` — rate limited. The reply carries ``Via`` (without it discord.py treats a 429 as a
  Cloudflare ban and raises), ``Retry-After``, ``X-RateLimit-Limit/Remaining/Reset/Reset-After/
  Bucket/Scope`` (and ``X-RateLimit-Global`` when global) and the JSON body
  ``{"message", "retry_after", "global", "code": 0}``; both ``HTTPClient.request`` and the webhook
  adapter sleep ``retry_after`` and retry.
* ``"500"`` — internal server error; discord.py retries after ``1 + 2 * attempt`` seconds.
* ``"slow"`` — the request is handled normally after ``delay`` seconds.
* ``"too_large"`` — HTTP 413 with JSON code 40005 (Request entity too large).
* ``"error"`` — any ``status``/``code``/``message`` you give.

Routes match as ``"METHOD /path/glob"`` (or just ``"/path/glob"`` for any method) against the path
after ``/api/v10``, e.g. ``"POST /webhooks/*"`` or ``"/interactions/*/callback"``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import time
from dataclasses import dataclass, field

from aiohttp import web

from .util import error_response, json_response

FAULT_KINDS = ("429", "500", "slow", "too_large", "error")


@dataclass
class Fault:
    """One armed fault; ``hits`` records when it fired."""

    method: str | None
    pattern: str
    kind: str
    count: int
    retry_after: float = 0.25
    is_global: bool = False
    delay: float = 1.0
    status: int = 400
    code: int = 0
    message: str = "Fault injected by the fake"
    hits: list[float] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.count - len(self.hits)

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.pattern)

    async def respond(self) -> web.Response | None:
        """The faulty reply, or None when the request should go on (after a delay for ``slow``)."""
        self.hits.append(time.monotonic())
        if self.kind == "slow":
            await asyncio.sleep(self.delay)
            return None
        if self.kind == "429":
            reset_after = f"{self.retry_after:.3f}"
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(max(1, math.ceil(self.retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
                "X-RateLimit-Reset-After": reset_after,
                "X-RateLimit-Bucket": f"fake-{abs(hash(self.pattern)) % 10**8:08d}",
                "X-RateLimit-Scope": "global" if self.is_global else "user",
            }
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
            body = {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
                "code": 0,
            }
            return json_response(body, status=429, headers=headers)
        if self.kind == "500":
            return error_response(500, 0, "500: Internal Server Error")
        if self.kind == "too_large":
            return error_response(413, 40005, "Request entity too large")
        return error_response(self.status, self.code, self.message)


class FaultInjector:
    """Armed faults, consulted in arming order for every REST request."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def arm(self, route: str, kind: str, count: int = 1, **options: object) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        method, _, pattern = route.strip().rpartition(" ")
        fault = Fault(method=method.upper() or None, pattern=pattern, kind=kind, count=count, **options)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        return next((f for f in self.faults if f.matches(method, path)), None)
