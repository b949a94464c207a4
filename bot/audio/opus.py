"""Live voice: raw 20 ms Opus packets for discord.py's `is_opus()` sources, streamed chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import numpy as np

from bot.audio.pcm import OPUS_FRAME_SAMPLES, OPUS_RATE, SAMPLE_RATE, av_frames


def opus_packets(
    chunks: Iterable[np.ndarray], *, sample_rate: int = SAMPLE_RATE, bitrate: int = 96_000
) -> Iterator[bytes]:
    """Raw Opus packets for discord.py's `is_opus()` sources: each exactly one 20 ms frame of
    48 kHz stereo (the mono input on both channels), no container; the last one is padded.

    Streams: each chunk's packets are yielded before the next chunk is read, so playback can start
    while later chunks are still being synthesised.
    """
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "stereo"
    encoder.format = "flt"
    encoder.bit_rate = bitrate
    encoder.options = {"application": "audio", "frame_duration": "20"}
    encoder.open()
    resampler = av.AudioResampler(
        format="flt", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME_SAMPLES
    )
    for chunk in chunks:
        pcm = np.clip(np.nan_to_num(np.asarray(chunk, dtype=np.float32).reshape(-1)), -1.0, 1.0)
        if pcm.size == 0:
            continue
        for frame in av_frames(pcm, sample_rate, step=pcm.size, stereo=True):
            for out in resampler.resample(frame):
                for packet in encoder.encode(out):
                    yield bytes(packet)
    for out in resampler.resample(None):
        for packet in encoder.encode(out):
            yield bytes(packet)
    for packet in encoder.encode(None):
        yield bytes(packet)
