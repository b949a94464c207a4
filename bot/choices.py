"""The fixed choices users and admins pick from, each named once: /say modes, reply file formats and
speech backends.

Each is a `Literal` (so discord.py turns a command option typed with it into a choice list) and the
tuple of its values from `get_args` (for checks and messages), so the two can never disagree.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["auto", "file", "channel"]  # where /say speaks: auto picks channel when it can
FileFormat = Literal["ogg", "mp3"]  # audio file replies: Ogg/Opus (voice messages) or MP3
Backend = Literal["modal", "local"]  # a Modal GPU, or the engine in this process

MODES: tuple[Mode, ...] = get_args(Mode)
FILE_FORMATS: tuple[FileFormat, ...] = get_args(FileFormat)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
OUTPUT_FORMATS: tuple[str, ...] = (*FILE_FORMATS, "wav")  # what `voicebot say` may also write

DEFAULT_MODE: Mode = "auto"
DEFAULT_FILE_FORMAT: FileFormat = "ogg"
DEFAULT_BACKEND: Backend = "modal"
