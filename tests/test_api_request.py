"""OpenAI's speech request body as the API reads it: what OpenAI clients send is accepted as they mean it,
and every wrong field is a 400 in OpenAI's error shape naming that field."""

from __future__ import annotations

import json

import pytest

from bot.api.errors import ApiError
from bot.api.request import MAX_INPUT_CHARS, SpeechAsk, parse_speech_request


def ask(**fields) -> dict:
    return {"model": "tts-1", "input": "Hello there.", "voice": "Ada", **fields}


def refused(body) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_speech_request(body)
    return caught.value


def test_what_the_openai_sdk_sends_by_default_is_read_with_openais_defaults():
    assert parse_speech_request(ask()) == SpeechAsk(model="tts-1", input="Hello there.", voice="Ada")
    assert SpeechAsk("echo-tts", "x", "y").response_format == "mp3"  # OpenAI's default, not the bot's Ogg


def test_every_field_and_echos_extra_body_fields_are_taken():
    body = ask(
        model="echo-tts",
        voice={"id": "v-123"},
        response_format="pcm",
        speed=1.5,
        stream_format="sse",
        instructions="",
        seed=42,
        force_speaker=True,
    )
    assert parse_speech_request(body) == SpeechAsk(
        model="echo-tts",
        input="Hello there.",
        voice="v-123",
        response_format="pcm",
        speed=1.5,
        stream_format="sse",
        seed=42,
        force_speaker=True,
    )


@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "echo-tts"])
def test_openais_model_names_are_aliases(model):
    assert parse_speech_request(ask(model=model)).model == model


@pytest.mark.parametrize(
    ("fields", "param", "code", "says"),
    [
        ({"model": "whisper-1"}, "model", "model_not_found", "'whisper-1'"),
        ({"model": None}, "model", "missing", "model is required"),
        ({"input": ""}, "input", "missing", "1 to 4096"),
        ({"input": 5}, "input", "missing", "input is required"),
        ({"input": "a" * (MAX_INPUT_CHARS + 1)}, "input", "string_above_max_length", "4097 characters"),
        ({"voice": ""}, "voice", "missing", "voice is required"),
        ({"voice": {"name": "Ada"}}, "voice", "missing", '{"id": "…"}'),
        ({"response_format": "ogg"}, "response_format", "invalid_value", "mp3, opus, aac, flac, wav, pcm"),
        ({"stream_format": "chunks"}, "stream_format", "invalid_value", "audio, sse"),
        ({"speed": 0.2}, "speed", "invalid_value", "0.25 to 4.0"),
        ({"speed": 4.5}, "speed", "invalid_value", "4.5"),
        ({"speed": True}, "speed", "invalid_value", "True"),
        ({"speed": "fast"}, "speed", "invalid_value", "'fast'"),
        ({"seed": -1}, "seed", "invalid_value", "from 0 to"),
        ({"seed": 1.5}, "seed", "invalid_value", "1.5"),
        ({"seed": 2**63}, "seed", "invalid_value", "9223372036854775807"),
        ({"force_speaker": "yes"}, "force_speaker", "invalid_value", "true or false"),
        ({"instructions": "Speak cheerfully"}, "instructions", "unsupported_parameter", "no instructions"),
        ({"sead": 4}, "sead", "unknown_parameter", "Unrecognized request argument supplied: sead"),
    ],
)
def test_a_wrong_field_is_a_400_naming_it(fields, param, code, says):
    error = refused(ask(**fields))
    assert (error.status, error.param, error.code, error.type) == (400, param, code, "invalid_request_error")
    assert says in error.message
    assert error.body() == {
        "error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": code}
    }
    json.dumps(error.body())  # what the server sends is plain JSON


@pytest.mark.parametrize("body", [[], "text", None, 3])
def test_a_body_that_is_not_an_object_is_refused_as_a_whole(body):
    error = refused(body)
    assert (error.status, error.param, error.code) == (400, None, "invalid_body")


def test_a_nan_speed_is_refused():
    assert refused(ask(speed=float("nan"))).param == "speed"


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(None, {}), (0.2, {"Retry-After": "1"}), (30.0, {"Retry-After": "30"}), (30.1, {"Retry-After": "31"})],
)
def test_retry_after_is_whole_seconds_rounded_up(seconds, header):
    assert ApiError(429, "Slow down.", type="rate_limit_error", retry_after=seconds).headers() == header
