"""The API's OpenAPI 3.1 document, served at `/openapi.json`: what clients, code generators and the
fuzzing tests (schemathesis) read. Built from the same constants the request checks use, so the
document and the server can't disagree on a field's range or choices.
"""

from __future__ import annotations

from typing import Any

from bot.api.request import (
    FORMATS,
    MAX_INPUT_CHARS,
    MAX_SPEED,
    MIN_SPEED,
    MODEL,
    MODEL_ALIASES,
    STREAM_FORMATS,
)
from modal_tts.output.stream import CONTENT_TYPES
from modal_tts.params import MAX_SEED

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    said = {
        400: "Bad input: the message says which field and what is allowed.",
        401: "Missing or wrong API key.",
        403: "Not allowed for this server's settings.",
        404: "No such voice in the key's server.",
        405: "Method not allowed.",
        408: "The request body arrived too slowly.",
        409: "The voice waits for its speaker's consent.",
        413: "The request body is too large.",
        429: "Over the server's daily quota or the member's cooldown; see Retry-After.",
        500: "The server failed on the request.",
        503: "The speech engine or the library is unavailable or busy; see Retry-After.",
    }
    responses: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": said[status],
            "content": {"application/json": {"schema": _ERROR}},
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
        responses[str(status)] = response
    return responses


_KEYED = (401, 500, 503)


def _speech_request() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["model", "input", "voice"],
        "additionalProperties": False,
        "properties": {
            "model": {
                "type": "string",
                "enum": [MODEL, *MODEL_ALIASES],
                "description": "Aliases all mean echo-tts.",
            },
            "input": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS, "pattern": r"\S"},
            "voice": {
                "oneOf": [
                    {
                        "type": "string",
                        "minLength": 1,
                        "pattern": r"\S",
                        "description": "A voice's name or id.",
                    },
                    {
                        "type": "object",
                        "required": ["id"],
                        "additionalProperties": False,
                        "properties": {"id": {"type": "string", "minLength": 1, "pattern": r"\S"}},
                    },
                ]
            },
            "response_format": {"type": "string", "enum": list(FORMATS), "default": "mp3"},
            "speed": {"type": "number", "minimum": MIN_SPEED, "maximum": MAX_SPEED, "default": 1.0},
            "stream_format": {"type": "string", "enum": list(STREAM_FORMATS), "default": "audio"},
            "instructions": {
                "type": "string",
                "maxLength": 0,
                "description": "Echo takes none: empty or absent.",
            },
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
            "force_speaker": {"type": "boolean"},
        },
    }


def _list(items: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's list envelope: `{"object": "list", "data": [...]}`."""
    data: dict[str, Any] = {"type": "array", **({"items": items} if items else {})}
    return {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": data},
    }


def _event() -> dict[str, Any]:
    """One server-sent event of an `sse` stream: its `data` is JSON, one of OpenAI's speech events."""
    usage = {
        "type": "object",
        "required": ["input_tokens", "output_tokens", "total_tokens"],
        "properties": {
            name: {"type": "integer", "minimum": 0}
            for name in ("input_tokens", "output_tokens", "total_tokens")
        },
    }
    events = [
        {
            "type": "object",
            "required": ["type", "audio"],
            "properties": {
                "type": {"const": "speech.audio.delta"},
                "audio": {"type": "string", "contentEncoding": "base64"},
            },
        },
        {
            "type": "object",
            "required": ["type", "usage"],
            "properties": {"type": {"const": "speech.audio.done"}, "usage": usage},
        },
        {
            "type": "object",
            "required": ["type", "error"],
            "properties": {"type": {"const": "error"}, "error": {"type": "object"}},
        },
    ]
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"oneOf": events},
            },
            "event": {"type": "string"},
        },
    }


def _voice() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["id", "object", "name", "owner", "created", "seconds"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "const": "audio.voice"},
            "name": {"type": "string"},
            "owner": {"type": "string", "description": "The Discord id of the member who owns it."},
            "created": {"type": "string", "description": "ISO 8601, UTC."},
            "seconds": {"type": "number", "description": "Length of its recording."},
        },
    }


def document() -> dict[str, Any]:
    audio = {
        mime: {"schema": {"type": "string", "format": "binary"}}
        for mime in sorted(set(CONTENT_TYPES.values()))
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Echo voicebot speech API",
            "version": "1",
            "description": "OpenAI-compatible speech in a Discord server's cloned voices. Output is "
            "AI-generated, watermarked, and licensed CC-BY-NC-SA-4.0 (Echo-TTS's output licence).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "vbk_… from /apikey"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type", "param", "code"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": ["string", "null"]},
                                "code": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "SpeechRequest": _speech_request(),
                "Voice": _voice(),
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Serving.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {"status": {"type": "string", "const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {
                        "200": {"description": "This document.", "content": {"application/json": {}}}
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "responses": {
                        "200": {
                            "description": "echo-tts and its aliases.",
                            "content": {"application/json": {"schema": _list({})}},
                        },
                        **_errors(*_KEYED),
                    },
                }
            },
            "/v1/audio/speech": {
                "post": {
                    "operationId": "createSpeech",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/SpeechRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The audio, streamed as it is made (`stream_format: audio`), or "
                            "server-sent events `speech.audio.delta` / `speech.audio.done` (`sse`). `pcm` is "
                            "24 kHz 16-bit little-endian mono.",
                            "content": {**audio, "text/event-stream": {"schema": _event()}},
                        },
                        **_errors(400, 404, 408, 409, 413, 429, *_KEYED),
                    },
                }
            },
            "/v1/audio/voices": {
                "get": {
                    "operationId": "listVoices",
                    "responses": {
                        "200": {
                            "description": "The key's server's voices.",
                            "content": {
                                "application/json": {"schema": _list({"$ref": "#/components/schemas/Voice"})}
                            },
                        },
                        **_errors(*_KEYED),
                    },
                },
                "post": {
                    "operationId": "createVoice",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["name", "audio_sample", "consent"],
                                    "properties": {
                                        "name": {"type": "string", "minLength": 1, "maxLength": 32},
                                        "audio_sample": {"type": "string", "format": "binary"},
                                        "consent": {
                                            "type": "string",
                                            "enum": ["true", "false"],
                                            "description": "true: the speaker agreed to be cloned.",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "The new voice.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Voice"}}
                            },
                        },
                        **_errors(400, 403, 408, 413, 429, *_KEYED),
                    },
                },
            },
            "/v1/audio/voices/{voice_id}": {
                "delete": {
                    "operationId": "deleteVoice",
                    "parameters": [
                        {"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "Deleted: its recording and voice data are gone.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["id", "object", "deleted"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "object": {"const": "audio.voice.deleted"},
                                            "deleted": {"const": True},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(404, *_KEYED),
                    },
                }
            },
        },
    }
