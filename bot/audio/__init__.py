"""Audio in and out: reference uploads → clean PCM, synthesised chunks → files and Opus packets.

Everything here is pure and synchronous (PyAV + numpy, no ffmpeg binary, no temp files, no torch);
the bot runs it in a worker thread or process. Internally audio is float32 mono at Echo's 44.1 kHz.

Modules, by concern (import the names below from `bot.audio`; `bot.encoder`'s worker processes
pickle these functions by reference, so each stays a module-level function):
- `sniff`: which container an upload is, from its magic bytes, before FFmpeg sees it.
- `decode`: `load_reference`, a bounded decode to mono 44.1 kHz plus length and silence checks.
- `level`: `stitch` (trim, pause, crossfade), `speech_level_dbfs` and the peak limiter.
- `encoding`: `encode` / `fit_to_limit` to Ogg/Opus, MP3, WAV or FLAC, with `Tags`.
- `voice_messages`: `voice_message`, an Ogg/Opus file plus Discord's duration and waveform.
- `opus`: `opus_packets`, raw 20 ms packets for live voice.
- `pcm`: the sample rates and helpers the others share.
"""

from bot.audio.decode import (
    MAX_REFERENCE_S,
    MIN_REFERENCE_S,
    REFERENCE_PEAK,
    SILENCE_PEAK_DBFS,
    SILENCE_WINDOW_RMS_DBFS,
    Reference,
    load_reference,
)
from bot.audio.encoding import (
    AI_COMMENT,
    BITRATE_LADDER,
    FORMATS,
    LICENCE,
    LICENCE_URL,
    Tags,
    encode,
    fit_to_limit,
)
from bot.audio.level import (
    CROSSFADE_S,
    EDGE_PAD_S,
    PAUSE_S,
    PEAK_CEILING_DBFS,
    TARGET_SPEECH_DBFS,
    speech_level_dbfs,
    stitch,
)
from bot.audio.opus import opus_packets
from bot.audio.pcm import OPUS_FRAME_SAMPLES, OPUS_RATE, SAMPLE_RATE
from bot.audio.voice_messages import (
    VoiceMessage,
    duration_seconds,
    voice_message,
    voice_message_waveform,
    waveform_levels,
)

__all__ = [
    "AI_COMMENT",
    "BITRATE_LADDER",
    "CROSSFADE_S",
    "EDGE_PAD_S",
    "FORMATS",
    "LICENCE",
    "LICENCE_URL",
    "MAX_REFERENCE_S",
    "MIN_REFERENCE_S",
    "OPUS_FRAME_SAMPLES",
    "OPUS_RATE",
    "PAUSE_S",
    "PEAK_CEILING_DBFS",
    "REFERENCE_PEAK",
    "SAMPLE_RATE",
    "SILENCE_PEAK_DBFS",
    "SILENCE_WINDOW_RMS_DBFS",
    "TARGET_SPEECH_DBFS",
    "Reference",
    "Tags",
    "VoiceMessage",
    "duration_seconds",
    "encode",
    "fit_to_limit",
    "load_reference",
    "opus_packets",
    "speech_level_dbfs",
    "stitch",
    "voice_message",
    "voice_message_waveform",
    "waveform_levels",
]
