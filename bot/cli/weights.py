"""`voicebot weights fetch DIR`: a local weights folder for `--backend local`, from Hugging Face."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.common import Progress
from bot.cli.options import Parser, examples
from modal_tts import prerequisites


def fetch(args: argparse.Namespace, hub: object | None = None) -> int:
    try:
        from modal_tts.weights import WeightsFetchError, fill_weights_dir
    except ImportError as exc:  # pragma: no cover - the bot's own dependencies include numpy only
        print(f"voicebot: can't fetch weights here: {exc}.", file=sys.stderr)
        return 1
    progress = Progress()
    try:
        fetched = fill_weights_dir(args.dir, hub, progress=progress)  # type: ignore[arg-type]
    except ImportError as exc:
        if not prerequisites.is_missing_engine(exc):
            raise
        missing = prerequisites.missing_packages() or [getattr(exc, "name", None) or "huggingface_hub"]
        line = prerequisites.not_installed("`voicebot weights fetch`", missing)
        print(f"voicebot: {line}", file=sys.stderr)
        return 2  # a setup to fix, as for `--backend local` without the extra
    except WeightsFetchError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"voicebot: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 74
    if fetched:
        print(
            f"Fetched {', '.join(fetched)} into {args.dir}. Use it with --backend local --weights {args.dir}."
        )
    else:
        print(f"{args.dir} already holds every weights file; nothing fetched.")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    fetch_example = "voicebot weights fetch ./weights"
    parser = commands.add_parser(
        "weights", help="fetch the model weights for --backend local", epilog=examples(fetch_example)
    )
    actions = parser.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    get = actions.add_parser(
        "fetch",
        help="download the weights (about 6 GB) into DIR: resumable, checksummed, pinned revisions",
        description="Fill DIR with the Echo-TTS and Fish S1-DAC weights from Hugging Face. Set HF_TOKEN "
        "if the repos need one; an interrupted fetch resumes where it stopped.",
        epilog=examples(fetch_example, "voicebot run --backend local --weights ./weights"),
    )
    get.add_argument("dir", type=Path, metavar="DIR", help="weights folder to fill (e.g. ./weights)")
    get.set_defaults(handler=fetch)
