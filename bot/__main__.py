"""`python -m bot` is `voicebot run`; `python -m bot COMMAND …` is `voicebot COMMAND …`."""

import sys

from bot.cli import main

sys.exit(main(sys.argv[1:] or ["run"]))
