"""Audio in and out: reference uploads → clean PCM, synthesised chunks → files and Opus packets.

Everything here is pure and synchronous (PyAV + numpy, no ffmpeg binary, no temp files, no torch);
the bot runs it in a worker thread or process. Internally audio is float32 mono at Echo's 44.1 kHz.

Modules, by concern (import the names below from `bot.audio`; `bot.encoder`'s worker processes
pickle these functions by reference, so each stays a module-level function):
- `sniff`: which container an upload is, from its magic bytes, before FFmpeg sees it.
- `decode`: `load_reference`, a bounded decode to mono 44.1 kHz plus length and silence checks.
- `encoding`: the formats users may pick, and `fit_to_limit` raising the bot's `OutputTooLarge`.
- `voice_messages`: `voice_message`, an Ogg/Opus file plus Discord's duration and waveform.
- `sample`: a made-up voice-like recording to try the bot (and test it) with.

Output (stitch and level, `encode` with `Tags`, `opus_packets`) is `modal_tts.output`, shared with the
engine so that both sides make the same audio from one definition; its names are re-exported here.
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
from bot.audio.encoding import FORMATS, fit_to_limit
from bot.audio.voice_messages import (
    VoiceMessage,
    duration_seconds,
    voice_message,
    voice_message_waveform,
    waveform_levels,
)
from modal_tts.output import (
    AI_COMMENT,
    BITRATE_LADDER,
    CROSSFADE_S,
    EDGE_PAD_S,
    LICENCE,
    LICENCE_URL,
    OPUS_FRAME_SAMPLES,
    OPUS_RATE,
    PAUSE_S,
    PEAK_CEILING_DBFS,
    SAMPLE_RATE,
    TARGET_SPEECH_DBFS,
    OpusPacketizer,
    Tags,
    encode,
    opus_packets,
    speech_level_dbfs,
    stitch,
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
    "OpusPacketizer",
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
