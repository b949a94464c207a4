"""What the engine sends back for a speak request (wire format 2), from the scheduler's pieces.

- `pcm`: each piece as it is decoded (a block of a chunk, or the whole chunk).
- `opus`: each piece's 20 ms Opus packets for live voice (48 kHz stereo, what Discord's voice gateway
  takes), one encoder over the whole request: the bot only forwards them.
- `file`: a progress message per chunk as it is made, then the finished file: stitched and levelled,
  encoded, tagged and fitted to the upload limit here, so the bot only forwards bytes (a 20 s Ogg/Opus
  file is ~160 KB against 1.76 MB of int16 PCM, and the encoding CPU is the container's, not the bot's).

Torch-free: the Modal class runs it on the scheduler's stream; benchmarks and tests run it on any pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from modal_tts import output, wire
from modal_tts.output import voice_messages
from modal_tts.scheduler import ChunkAudio


def replies(pieces: Iterable[ChunkAudio], asked: wire.SpeakRequest) -> Iterator[dict[str, Any]]:
    """The wire messages for `asked`, given its speech as the scheduler streams it."""
    if asked.output == "file":
        assert asked.file is not None  # speak_request_from_wire insists on one
        yield from _file(pieces, asked.file, len(asked.texts))
        return
    if asked.output == "opus":
        yield from _opus(pieces, len(asked.texts))
        return
    for piece in pieces:
        yield wire.pcm_chunk_to_wire(
            piece.index, piece.audio, piece.gpu_seconds, block=piece.block, last=piece.last
        )


def _opus(pieces: Iterable[ChunkAudio], total: int) -> Iterator[dict[str, Any]]:
    """One Opus stream over the whole request, as the bot's own live encoder makes it: each piece's
    whole 20 ms packets as soon as it is decoded, the rest flushed after the last chunk."""
    packetizer = output.OpusPacketizer()
    for piece in pieces:
        packets = packetizer.feed(piece.audio)
        if piece.last and piece.index == total - 1:
            packets += packetizer.flush()
        peak = float(np.max(np.abs(piece.audio))) if piece.audio.size else 0.0
        yield wire.opus_block_to_wire(
            piece.index, piece.block, packets, piece.audio.size, piece.gpu_seconds, last=piece.last, peak=peak
        )


def _file(pieces: Iterable[ChunkAudio], spec: wire.FileSpec, total: int) -> Iterator[dict[str, Any]]:
    chunks: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    gpu_seconds = 0.0
    for piece in pieces:
        blocks.append(piece.audio)
        gpu_seconds += piece.gpu_seconds
        if not piece.last:
            continue
        chunk = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        blocks = []
        chunks.append(chunk)
        peak = float(np.max(np.abs(chunk))) if chunk.size else 0.0
        yield wire.progress_to_wire(len(chunks), total, peak)
    pcm = output.stitch(chunks)
    tags = output.Tags(title=spec.title, voice=spec.voice)
    waveform = None
    if spec.voice_message:
        message = voice_messages.voice_message(pcm, tags=tags, limit_bytes=spec.limit_bytes)
        data, waveform = message.data, message.waveform
    elif spec.limit_bytes is None:
        data = output.encode(pcm, spec.format, tags=tags)
    else:
        data = output.fit_to_limit(pcm, spec.format, spec.limit_bytes, tags)
    seconds = voice_messages.duration_seconds(pcm)
    yield wire.file_to_wire(spec.format, data, seconds, gpu_seconds, waveform)
