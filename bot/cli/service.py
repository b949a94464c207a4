"""`voicebot doctor|run|sync`: the bot's process and its health check (the checks are `bot.cli.doctor`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from bot.cli.common import create_backend, library_exists, open_store
from bot.cli.options import examples, json_option, library_command, speech_options
from bot.config import Config, check
from bot.errors import VoiceBotError
from bot.wording import plural

log = logging.getLogger("bot.run")
START_CHECK_TIMEOUT_S = 30.0  # the start-up lookup of the Modal app (it starts no container)


class DiscordUnreachable(VoiceBotError):
    exit_code = 1

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(
            f"Can't reach Discord at {where} ({detail}). Check the network (and VOICEBOT_DISCORD_API_BASE "
            "if set), then try again."
        )


def _discord_errors() -> tuple[type[BaseException], ...]:
    import aiohttp
    import discord

    return (
        aiohttp.ClientError,
        discord.GatewayNotFound,
        discord.HTTPException,
        ConnectionError,
        TimeoutError,
    )


def _api_base(config: Config) -> str:
    return config.discord_api_base or "https://discord.com/api"


async def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from bot.cli.doctor import diagnose

    checks = [check async for check in diagnose(config, repair=args.repair)]
    problems = sum(check.problem for check in checks)
    if args.json:
        print(json.dumps([check.as_dict() for check in checks], indent=2, ensure_ascii=False))
    else:
        for check in checks:
            print(check.render())
        print(
            "All good." if not problems else f"{plural(problems, 'problem')} to fix: see the FIX lines above."
        )
    return 0 if not problems else 1


async def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from bot.client import discord_token, run_bot

    # In the README's order: the Discord token, the settings, the library, then the speech set-up
    discord_token(config)
    check(config)

    if library_exists(config):  # a damaged library is one line now, not a traceback after login
        store = await asyncio.to_thread(open_store, config, writes=False)
        await asyncio.to_thread(store.close)
    await _check_speech(config)
    logging.getLogger().setLevel(logging.INFO)
    try:
        await run_bot(config)
    except _discord_errors() as exc:
        raise DiscordUnreachable(_api_base(config), _short(exc)) from None
    return 0


async def _check_speech(config: Config) -> None:
    """Before logging in: what only an admin can fix (no engine extra, no weights, no Modal token or
    app) stops here in one line; Modal unreachable for now is a warning, and the bot starts."""
    from bot.tts.readiness import check_backend

    backend = create_backend(config, timeout=START_CHECK_TIMEOUT_S)
    try:
        warning = await check_backend(config.backend, config.weights_dir, backend)
    finally:
        await backend.close()
    if warning:
        log.warning("%s", warning)


async def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    from bot.client import run_bot

    try:
        await run_bot(config, sync_only=True)
    except _discord_errors() as exc:
        raise DiscordUnreachable(_api_base(config), _short(exc)) from None
    scope = f"guild {config.dev_guild_id}" if config.dev_guild_id else "all servers (global)"
    print(f"Slash commands registered for {scope}.")
    return 0


def _short(exc: BaseException) -> str:
    cause = getattr(exc, "os_error", None) or exc  # aiohttp wraps the socket's own error
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return text.splitlines()[0][:120]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check Discord, the data and the speech backend; say what to fix",
        epilog=examples(
            "voicebot doctor",
            "voicebot doctor --repair",
            "voicebot doctor --json --backend local --weights ./weights",
        ),
    )
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="also tidy interrupted writes and re-encode damaged voices from their kept recordings",
    )
    json_option(doctor)
    speech_options(doctor)
    library_command(doctor, cmd_doctor)

    run = commands.add_parser(
        "run",
        help="connect to Discord and serve the commands (Ctrl-C stops it)",
        epilog=examples("voicebot run", "voicebot run --backend local --weights ./weights --device cuda"),
    )
    speech_options(run)
    library_command(run, cmd_run)  # checks its settings and speech set-up itself, in its own order

    sync = commands.add_parser(
        "sync",
        help="register the slash commands with Discord, then exit",
        epilog=examples("voicebot sync", "VOICEBOT_DEV_GUILD=123 voicebot sync"),
    )
    library_command(sync, cmd_sync)  # registers commands only: no speech backend is made or checked
