"""`python -m bot …` is `voicebot …`."""

import sys

from bot.cli import main

sys.exit(main())
