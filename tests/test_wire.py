"""modal_tts.wire version 2: each reply kind survives the trip (pickle, as Modal sends it), a bot and an
app of different versions are told to redeploy, and a malformed reply is refused naming what is wrong."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from modal_tts import output, wire
from tests.media import speech_like


def sent(message: dict[str, Any]) -> Any:
    """What the other side receives: Modal pickles what a method returns or yields."""
    return pickle.loads(pickle.dumps(message))


def opus_message(**changes: Any) -> dict[str, Any]:
    message = wire.opus_block_to_wire(2, 5, [b"\xfc\x01\x02", b"\xfc\x03"], 4096, 0.25, last=True)
    return {**message, **changes}


def file_message(**changes: Any) -> dict[str, Any]:
    return {**wire.file_to_wire("ogg", b"OggS...", 3.5, 1.25), **changes}


def pcm_message(**changes: Any) -> dict[str, Any]:
    return {**wire.pcm_chunk_to_wire(1, np.array([0.0, 0.5, -1.0], np.float32), 0.5), **changes}


# --- round trips ---------------------------------------------------------------------------------


def test_live_audio_arrives_as_the_packets_it_left_as() -> None:
    pcm = output.stitch([speech_like(1.5, seed=1)])
    packetizer = output.OpusPacketizer()
    blocks = [pcm[:30_000], pcm[30_000:]]
    messages = []
    for i, block in enumerate(blocks):
        last = i == len(blocks) - 1
        packets = packetizer.feed(block) + (packetizer.flush() if last else [])
        messages.append(wire.opus_block_to_wire(0, i, packets, block.size, 0.1 * i, last=last))

    replies = [wire.reply_from_wire(sent(m)) for m in messages]
    assert all(isinstance(r, wire.OpusBlock) for r in replies)
    got = [p for r in replies if isinstance(r, wire.OpusBlock) for p in r.packets]
    assert got == list(output.opus_packets([pcm]))
    assert [(r.index, r.block, r.samples, r.last) for r in replies if isinstance(r, wire.OpusBlock)] == [
        (0, 0, 30_000, False),
        (0, 1, pcm.size - 30_000, True),
    ]


def test_a_finished_file_arrives_whole_with_its_tags() -> None:
    data = output.encode(output.stitch([speech_like(1.0, seed=2)]), "ogg", tags=output.Tags("Hi", "Ada"))
    reply = wire.reply_from_wire(sent(wire.file_to_wire("ogg", data, 1.0, 2.5)))
    assert reply == wire.EncodedFile(format="ogg", data=data, seconds=1.0, gpu_seconds=2.5)
    assert b"ARTIST=Ada" in reply.data


def test_pcm_when_asked_is_int16_as_in_version_1() -> None:
    audio = np.array([0.0, 0.5, -1.0, 2.0], np.float32)
    message = wire.pcm_chunk_to_wire(3, audio, 0.75)
    assert message["pcm"] == wire.chunk_to_wire(3, audio, 44_100, 0.75)["pcm"]  # one int16 definition
    reply = wire.reply_from_wire(sent(message))
    assert isinstance(reply, wire.PcmChunk) and (reply.index, reply.gpu_seconds) == (3, 0.75)
    assert reply.audio.dtype == np.float32
    assert np.allclose(reply.audio, [0.0, 0.5, -1.0, 1.0], atol=1 / 32767)


def test_the_per_kind_parsers_read_their_kind_only() -> None:
    assert wire.opus_block_from_wire(opus_message()).packets == (b"\xfc\x01\x02", b"\xfc\x03")
    assert wire.file_from_wire(file_message()).format == "ogg"
    assert wire.pcm_chunk_from_wire(pcm_message()).index == 1
    with pytest.raises(wire.WireError, match="kind is 'file'; expected 'opus'"):
        wire.opus_block_from_wire(file_message())


# --- versions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "app_says"),
    [
        (wire.chunk_to_wire(0, np.zeros(4, np.float32), 44_100, 0.1), "1 (no version)"),  # a v1 app
        (opus_message(v=3), "3"),
        (file_message(v="2"), "'2'"),
        (pcm_message(v=True), "True"),
    ],
)
def test_a_reply_from_another_version_says_to_redeploy(message: dict[str, Any], app_says: str) -> None:
    with pytest.raises(wire.WireVersionMismatch) as caught:
        wire.reply_from_wire(message)
    text = str(caught.value)
    assert "Modal app and this bot are different versions" in text and "`voicebot deploy`" in text
    assert f"the app speaks wire format {app_says}, the bot 2" in text
    assert isinstance(caught.value, wire.WireError) and isinstance(caught.value, ValueError)


def test_the_engine_refuses_a_request_from_another_version() -> None:
    wire.check_request_version(wire.WIRE_VERSION)
    for declared in (None, 1, 3, "2", 2.0):
        with pytest.raises(wire.WireVersionMismatch, match="voicebot deploy") as caught:
            wire.check_request_version(declared)
        assert (caught.value.app_version, caught.value.bot_version) == (2, declared)


def test_the_mismatch_crosses_back_from_the_container_intact() -> None:
    err = wire.WireVersionMismatch(app_version=2, bot_version=None)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is wire.WireVersionMismatch and str(again) == str(err)
    assert (again.app_version, again.bot_version) == (2, None)
    assert "the bot 1 (no version)" in str(again)


# --- malformed replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ([1, 2], "Reply is a list of 2; expected a dict"),
        ({**opus_message(), "kind": "flac"}, "kind is 'flac'; expected one of opus, file, pcm"),
        ({k: v for k, v in opus_message().items() if k != "kind"}, "kind is None"),
        (opus_message(packets=b"\xfc\x01"), "'packets' is 2 bytes; expected a list of bytes"),
        (opus_message(packets=[b"\xfc", b""]), "packet 1 is 0 bytes; expected non-empty bytes"),
        (opus_message(packets=[b"\xfc", "x"]), "packet 1 is str 'x'"),
        (opus_message(index=-1), "Opus message: 'index' is int -1; expected an int >= 0"),
        (opus_message(block=1.0), "'block' is float 1.0; expected an int >= 0"),
        (opus_message(samples=True), "'samples' is bool True"),
        (opus_message(last=1), "'last' is int 1; expected True or False"),
        ({k: v for k, v in opus_message().items() if k != "last"}, "'last' is missing"),
        (opus_message(gpu_seconds=float("nan")), "'gpu_seconds' is float nan; expected seconds >= 0"),
        (file_message(format=""), "File message: 'format' is str ''; expected a format name"),
        (file_message(data=b""), "'data' is 0 bytes; expected the file's bytes"),
        (file_message(data="OggS"), "'data' is str 'OggS'"),
        (file_message(seconds=-1.0), "'seconds' is float -1.0; expected seconds >= 0"),
        (pcm_message(pcm=b"\x00\x01\x02"), "'pcm' is 3 bytes; expected int16 bytes"),
        (pcm_message(sample_rate=48_000), "'sample_rate' is int 48000; expected 44100"),
        (pcm_message(index="1"), "PCM message: 'index' is str '1'"),
    ],
)
def test_a_malformed_reply_is_refused_naming_what_is_wrong(message: Any, says: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.reply_from_wire(message)
    assert not isinstance(caught.value, wire.WireVersionMismatch)
    assert says in str(caught.value)


def test_a_huge_wrong_value_is_named_not_dumped() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.reply_from_wire(file_message(seconds="x" * 10_000))
    assert len(str(caught.value)) < 200


def test_version_1_helpers_still_work() -> None:
    index, audio, gpu_seconds = wire.chunk_from_wire(
        wire.chunk_to_wire(4, np.ones(3, np.float32), 44_100, 2.0)
    )
    assert (index, gpu_seconds) == (4, 2.0) and np.allclose(audio, 1.0)
