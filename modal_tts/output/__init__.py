"""Synthesised speech → what a listener gets: levelled, stitched, encoded as Opus packets or a tagged file.

One definition for both sides: the engine encodes its output here before it leaves the GPU container
(packets and files are a tenth of the PCM they replace), and the bot imports the same code for what it
still encodes itself. Pure and synchronous, torch-free, and nothing from `bot/`: numpy, PyAV (no
ffmpeg binary, no temp files) and mutagen. Audio is float32 mono at Echo's 44.1 kHz.

Modules, by concern:
- `level`: `stitch` (trim, pause, crossfade), `speech_level_dbfs` and the peak limiter.
- `encoding`: `encode` / `fit_to_limit` to Ogg/Opus, MP3, WAV or FLAC, with `Tags`.
- `opus`: `OpusPacketizer` and `opus_packets`, raw 20 ms packets for live voice.
- `voice_messages`: `voice_message`, an Ogg/Opus file plus Discord's duration and waveform.
- `errors`: `OutputTooLarge`, which the bot words for its users (`bot.errors.OutputTooLarge`).
- `pcm`: the sample rates and helpers the others share.
"""

from modal_tts.output.encoding import (
    AI_COMMENT,
    BITRATE_LADDER,
    FORMATS,
    LICENCE,
    LICENCE_URL,
    Tags,
    encode,
    fit_to_limit,
)
from modal_tts.output.errors import OutputTooLarge
from modal_tts.output.level import (
    CROSSFADE_S,
    EDGE_PAD_S,
    PAUSE_S,
    PEAK_CEILING_DBFS,
    TARGET_SPEECH_DBFS,
    speech_level_dbfs,
    stitch,
)
from modal_tts.output.opus import LIVE_BITRATE, OpusPacketizer, opus_packets
from modal_tts.output.pcm import OPUS_FRAME_SAMPLES, OPUS_RATE, SAMPLE_RATE

__all__ = [
    "AI_COMMENT",
    "BITRATE_LADDER",
    "CROSSFADE_S",
    "EDGE_PAD_S",
    "FORMATS",
    "LICENCE",
    "LICENCE_URL",
    "LIVE_BITRATE",
    "OPUS_FRAME_SAMPLES",
    "OPUS_RATE",
    "PAUSE_S",
    "PEAK_CEILING_DBFS",
    "SAMPLE_RATE",
    "TARGET_SPEECH_DBFS",
    "OpusPacketizer",
    "OutputTooLarge",
    "Tags",
    "encode",
    "fit_to_limit",
    "opus_packets",
    "speech_level_dbfs",
    "stitch",
]
