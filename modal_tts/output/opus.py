"""Live voice: raw 20 ms Opus packets for discord.py's `is_opus()` sources, made as the audio arrives.

`OpusPacketizer` is the one encoder: fed PCM a block at a time (a chunk's decoded blocks, arriving
over seconds), it returns every whole 20 ms packet it can so far and holds the rest, so a stream fed
in pieces gives the very packets the whole clip would. `opus_packets` is the same over whole chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import numpy as np

from modal_tts.output.pcm import OPUS_FRAME_SAMPLES, OPUS_RATE, SAMPLE_RATE, av_frames, clean

# bits/s of live voice: what Discord's voice channels default to, transparent for speech, and within the
# wire budget of 200 KB per 20 s even for speech without pauses (96 kbit/s took 214 KB).
LIVE_BITRATE = 64_000


class OpusPacketizer:
    """Mono float PCM in, raw Opus packets out: each exactly one 20 ms frame of 48 kHz stereo (the
    mono input on both channels), no container; `flush` pads and returns the last one.

    Not thread-safe: one stream, one owner. Each `feed` returns only whole packets; the fewer than
    960 samples left over wait in the resampler for the next piece or for `flush`.
    """

    def __init__(self, *, sample_rate: int = SAMPLE_RATE, bitrate: int = LIVE_BITRATE) -> None:
        self.sample_rate = sample_rate
        self.bitrate = bitrate
        self.samples_in = 0  # input samples fed so far, at `sample_rate`
        self.packets_out = 0
        self._flushed = False
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "flt"
        self._encoder.bit_rate = bitrate
        self._encoder.options = {"application": "audio", "frame_duration": "20"}
        self._encoder.open()
        self._resampler = av.AudioResampler(
            format="flt", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME_SAMPLES
        )

    def feed(self, pcm: np.ndarray) -> list[bytes]:
        """The packets completed by `pcm` (float mono at `sample_rate`; clipped to [-1, 1], NaN → 0)."""
        if self._flushed:
            raise ValueError("OpusPacketizer.feed after flush: make a new one for a new stream")
        pcm = clean(pcm)
        if pcm.size == 0:
            return []
        self.samples_in += pcm.size
        packets: list[bytes] = []
        for frame in av_frames(pcm, self.sample_rate, step=pcm.size, stereo=True):
            self._encode(self._resampler.resample(frame), packets)
        return packets

    def flush(self) -> list[bytes]:
        """The last packets: the held samples padded to a whole frame, then what the encoder holds."""
        if self._flushed:
            return []
        self._flushed = True
        packets: list[bytes] = []
        self._encode(self._resampler.resample(None), packets)
        self._encode([None], packets)
        return packets

    def _encode(self, frames: Iterable[av.AudioFrame | None], into: list[bytes]) -> None:
        for frame in frames:
            for packet in self._encoder.encode(frame):
                into.append(bytes(packet))
                self.packets_out += 1


def opus_packets(
    chunks: Iterable[np.ndarray], *, sample_rate: int = SAMPLE_RATE, bitrate: int = LIVE_BITRATE
) -> Iterator[bytes]:
    """`OpusPacketizer` over whole chunks: the packets of all of them in order, then the flushed last.

    Streams: each chunk's packets are yielded before the next chunk is read, so playback can start
    while later chunks are still being synthesised.
    """
    packetizer = OpusPacketizer(sample_rate=sample_rate, bitrate=bitrate)
    for chunk in chunks:
        yield from packetizer.feed(chunk)
    yield from packetizer.flush()
