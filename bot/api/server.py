"""`voicebot api`: the OpenAI-compatible HTTP speech API, an aiohttp application on `bot.api.service`.

Routes: `POST /v1/audio/speech`, `GET|POST /v1/audio/voices`, `DELETE /v1/audio/voices/{id}`,
`GET /v1/models`, and, without a key, `GET /healthz` and `GET /openapi.json`.

Choices worth knowing:
- **Keys.** `Authorization: Bearer vbk_…` on every `/v1/` route; the library compares it in constant
  time. Keys are never logged: the access log holds the request line, never headers, and no key is
  accepted in a URL.
- **Bodies are capped before they are read**: a declared `Content-Length` over the route's cap is
  refused at once (413), and a chunked body is counted as it arrives. Speech takes 64 KiB of JSON (4,096
  characters, escaped); a new voice the bot's reference limit and a little.
- **Slow clients.** Headers must arrive within `HEADER_TIMEOUT_S` of the connection opening (aiohttp's
  keep-alive timer runs from the start of a connection and closes one whose request never completes),
  a body within `BODY_TIMEOUT_S`, and each write of a response must be taken within `WRITE_TIMEOUT_S`,
  so a client that stops reading can't hold a stream, and its GPU rows, forever.
- **Errors** are OpenAI's shape (`bot.api.errors`), from one middleware; an unexpected exception is
  logged with its traceback and answered "server_error" without it. After the first audio bytes a
  failure can't change the status: an `audio` stream is cut (the client sees a short body, not a
  valid-looking one), an `sse` stream ends with an `error` event.
- **No CORS** unless `VOICEBOT_API_CORS_ORIGINS` names origins (or `*`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from bot.api.errors import ApiError, from_error, invalid, unauthorised
from bot.api.openapi import document
from bot.api.request import MODEL, MODEL_ALIASES, parse_speech_request
from bot.api.service import ApiService, SpeechStream
from bot.config import Config
from bot.errors import VoiceBotError
from bot.limits import Limits
from bot.store.api_keys import ApiKey
from modal_tts.output.stream import content_type

log = logging.getLogger(__name__)

SPEECH_BODY_CAP = 64 * 1024
FORM_SLACK = 64 * 1024  # a new voice's form: the recording plus its other fields
HEADER_TIMEOUT_S = 15.0
BODY_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 60.0
LINGER_S = 5.0
KEY: web.AppKey[ApiService] = web.AppKey("api", ApiService)
CORS: web.AppKey[tuple[str, ...]] = web.AppKey("cors", tuple)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers())


def _http_error(exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (no such route, wrong method, too large) in OpenAI's shape."""
    if exc.status == 404:
        return ApiError(
            404, "No such route. See /openapi.json for this API's routes.", type="not_found_error"
        )
    if exc.status == 405:
        return ApiError(405, "That method isn't allowed here. See /openapi.json.", code="method_not_allowed")
    if exc.status == 413:
        return ApiError(413, "The request body is too large.", code="request_too_large")
    return ApiError(exc.status, exc.reason or "Bad request.", code="http_error")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc)
    except VoiceBotError as exc:
        return _error_response(from_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_response(_http_error(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        return _error_response(
            ApiError(
                500, "The server failed on that request. Try again.", type="server_error", code="server_error"
            )
        )


def _allowed_origin(request: web.Request) -> str | None:
    allowed = request.app[CORS]
    origin = request.headers.get("Origin")
    if origin is None or not allowed or not ("*" in allowed or origin in allowed):
        return None
    return origin


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only where configured: a browser's preflight from a named origin is answered here; every answer to
    that origin is marked as its own by `_cors_headers`, streams included (their headers leave before the
    handler returns)."""
    if request.method == "OPTIONS" and _allowed_origin(request) is not None:
        headers = {
            "Access-Control-Allow-Methods": "GET, POST, DELETE",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
        }
        return web.Response(status=204, headers=headers)
    return await handler(request)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers["Vary"] = "Origin"


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorised()
    return token.strip()


async def _key(request: web.Request) -> ApiKey:
    key = await request.app[KEY].key_for(_bearer(request))
    if key is None:
        raise unauthorised()
    return key


async def _read_capped(request: web.Request, cap: int) -> bytes:
    """The body, refused (413) once it is over `cap`, before more of it is read; within the body timeout."""
    if request.content_length is not None and request.content_length > cap:
        raise _too_large(request.content_length, cap)
    parts, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > cap:
                    raise _too_large(size, cap)
                parts.append(chunk)
    except TimeoutError:
        raise _too_slow() from None
    return b"".join(parts)


def _too_slow() -> ApiError:
    return ApiError(408, f"The request body took over {BODY_TIMEOUT_S:g} s to arrive.", code="timeout")


def _too_large(size: int, cap: int) -> ApiError:
    return ApiError(
        413,
        f"The request body is {size:,} bytes or more; the most this route takes is {cap:,}.",
        code="request_too_large",
    )


async def _json_body(request: web.Request) -> object:
    body = await _read_capped(request, SPEECH_BODY_CAP)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise invalid(
            None, "The request body must be JSON (Content-Type: application/json).", "invalid_json"
        ) from None


# the routes


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def models(request: web.Request) -> web.Response:
    await _key(request)
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "echo-voicebot"}
        for name in (MODEL, *MODEL_ALIASES)
    ]
    return web.json_response({"object": "list", "data": data})


async def speech(request: web.Request) -> web.StreamResponse:
    key = await _key(request)
    ask = parse_speech_request(await _json_body(request))
    stream = await request.app[KEY].start_speech(key, ask)
    if ask.stream_format == "sse":
        return await _send_events(request, stream)
    return await _send_audio(request, stream, ask.response_format)


async def _write(response: web.StreamResponse, data: bytes) -> None:
    async with asyncio.timeout(WRITE_TIMEOUT_S):
        await response.write(data)


async def _send_audio(request: web.Request, stream: SpeechStream, fmt: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": content_type(fmt)})
    response.enable_chunked_encoding()
    try:
        try:
            await response.prepare(request)
            async for data in stream.audio():
                await _write(response, data)
        except (ConnectionResetError, TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:  # after the first bytes: cut the stream, so no client takes it as whole
            _log_cut(request, exc)
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("stream cut after a failure") from exc
        await response.write_eof()
    finally:
        await stream.close()  # settled after the response's end: the client waits for no library write
    return response


def _log_cut(request: web.Request, exc: BaseException) -> None:
    if isinstance(exc, VoiceBotError):
        log.warning("API stream %s cut: %s", request.path, exc.message)
    else:
        log.error("API stream %s cut", request.path, exc_info=exc)


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def _send_events(request: web.Request, stream: SpeechStream) -> web.StreamResponse:
    """OpenAI's `sse` stream: `speech.audio.delta` events, each a base64 piece of the audio byte stream,
    then `speech.audio.done` with the usage (or an `error` event)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        try:
            await response.prepare(request)
            async for data in stream.audio():
                delta = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
                await _write(response, _event(delta))
            await _write(response, _event({"type": "speech.audio.done", "usage": stream.usage.as_dict()}))
        except (ConnectionResetError, TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:
            _log_cut(request, exc)
            error = (
                from_error(exc)
                if isinstance(exc, VoiceBotError)
                else ApiError(500, "The engine failed mid-stream.", type="server_error")
            )
            await _write(response, _event({"type": "error", **error.body()}))
        await response.write_eof()
    finally:
        await stream.close()
    return response


def _voice_json(voice: Any) -> dict[str, Any]:
    return {
        "id": voice.id,
        "object": "audio.voice",
        "name": voice.name,
        "owner": str(voice.owner_id),
        "created": voice.created_at,
        "seconds": round(voice.duration_s, 2),
    }


async def list_voices(request: web.Request) -> web.Response:
    key = await _key(request)
    voices = await request.app[KEY].voices(key)
    return web.json_response({"object": "list", "data": [_voice_json(v) for v in voices]})


async def create_voice(request: web.Request) -> web.Response:
    key = await _key(request)
    api = request.app[KEY]
    cap = api.config.max_reference_bytes + FORM_SLACK
    if request.content_length is not None and request.content_length > cap:
        raise _too_large(request.content_length, cap)
    if not request.content_type.startswith("multipart/form-data"):
        raise invalid(
            None, "Send the new voice as multipart/form-data: name, audio_sample, consent.", "invalid_body"
        )
    fields = await _form(request, cap)
    name = fields.get("name", b"").decode("utf-8", "replace").strip()
    if not name:
        raise invalid("name", "name is required: what the voice is called in this server.", "missing")
    sample = fields.get("audio_sample")
    if not sample:
        raise invalid(
            "audio_sample", "audio_sample is required: a recording of the speaker, 5 s to 5 min.", "missing"
        )
    consent = fields.get("consent", b"").decode("utf-8", "replace").strip().lower()
    if consent not in ("true", "yes", "1", "false", "no", "0", ""):
        raise invalid("consent", f"consent is {consent[:20]!r}; allowed: true or false.")
    voice = await api.clone(key, name, sample, consent=consent in ("true", "yes", "1"))
    return web.json_response(_voice_json(voice), status=201)


async def _form(request: web.Request, cap: int) -> dict[str, bytes]:
    """The form's parts by name, counted against `cap` as they arrive."""
    fields: dict[str, bytes] = {}
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):  # a nested multipart: not ours
                    continue
                data = bytearray()
                while chunk := await part.read_chunk():
                    size += len(chunk)
                    if size > cap:
                        raise _too_large(size, cap)
                    data.extend(chunk)
                if part.name in ("name", "audio_sample", "consent"):
                    fields[part.name] = bytes(data)
    except TimeoutError:
        raise _too_slow() from None
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # a malformed form, or part header
        detail = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise invalid(None, f"The form can't be read: {detail[:200]}.", "invalid_body") from None
    return fields


async def delete_voice(request: web.Request) -> web.Response:
    key = await _key(request)
    voice = await request.app[KEY].delete(key, request.match_info["voice_id"])
    return web.json_response({"id": voice.id, "object": "audio.voice.deleted", "deleted": True})


def create_app(api: ApiService, *, cors_origins: tuple[str, ...] | None = None) -> web.Application:
    """The API on `api`; browsers' origins from its configuration unless given."""
    app = web.Application(
        middlewares=[cors, errors], client_max_size=api.config.max_reference_bytes + FORM_SLACK
    )
    app[KEY] = api
    app[CORS] = allowed_origins(api.config) if cors_origins is None else cors_origins
    app.on_response_prepare.append(_cors_headers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_get("/v1/audio/voices", list_voices)
    app.router.add_post("/v1/audio/voices", create_voice)
    app.router.add_delete("/v1/audio/voices/{voice_id}", delete_voice)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Listen on host:port; the runner is the caller's to clean up."""
    # A body refused unread (too large, too slow) is read on and dropped for up to LINGER_S after the
    # answer, so the client, still sending, gets to read the 413 rather than a reset connection.
    runner = web.AppRunner(app, keepalive_timeout=HEADER_TIMEOUT_S, lingering_time=LINGER_S, access_log=log)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()  # nothing is left half set up for the caller to close
        raise
    return runner


def listen_failure(exc: OSError) -> str:
    """Why `serve` couldn't listen, in words (the port is taken, or the address isn't this machine's)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def allowed_origins(config: Config) -> tuple[str, ...]:
    raw = config.api_cors_origins or ""
    return tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())


async def run(config: Config, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, on the library and backend the configuration names."""
    from bot.cli.common import create_backend, open_store

    store = await asyncio.to_thread(open_store, config, writes=True)
    backend = create_backend(config)
    limits = Limits(store, holder=f"api {host}:{port}")  # the same after a restart: it clears what it left
    try:
        await limits.start()
        runner = await serve(
            create_app(ApiService(store, backend, limits, config)),
            host,
            port,
        )
        log.info("Speech API listening on http://%s:%d (OpenAPI document at /openapi.json)", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await backend.close()
        await asyncio.to_thread(store.close)
