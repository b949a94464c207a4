"""The `voicebot` console script: one module per command family, and an entry point that dispatches.

`main` (the entry point) and `build_parser` live in `bot.cli.main`; `options` holds the argparse pieces
the families share and `common` what their commands share (the library, the backend, progress, output
files, the terminal's wording of errors). `doctor` holds the checks behind `voicebot doctor`.
"""

from bot.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
