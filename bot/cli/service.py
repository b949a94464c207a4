"""`voicebot doctor|run|sync`: the bot's process and its health check (the checks are `bot.cli.doctor`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from bot import audit
from bot.cli.common import create_backend, library_exists, open_store
from bot.cli.options import examples, json_option, library_command, ranged, speech_options
from bot.config import Config, check
from bot.errors import InvalidInput, VoiceBotError
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


def _check_scale(args: argparse.Namespace) -> None:
    """--shards with --shard-count, or --processes, never both; named before anything starts."""
    from bot.launcher import parse_shards

    if args.api_port is not None and args.processes is not None:
        raise InvalidInput(
            "--api-port serves the speech API from one bot process; with --processes, run `voicebot api` "
            "beside them instead."
        )
    if args.processes is not None:
        if args.shards is not None:
            raise InvalidInput(
                "--processes and --shards don't go together: --processes picks each process's shards."
            )
        if not 1 <= args.processes <= 64:
            raise InvalidInput(f"--processes is {args.processes}; allowed is 1 to 64.")
        if args.shard_count is not None and args.shard_count < args.processes:
            raise InvalidInput(
                f"--shard-count {args.shard_count} is fewer than --processes {args.processes}."
            )
        return
    if args.shards is None:
        if args.shard_count is not None:
            raise InvalidInput("--shard-count goes with --shards A-B (or --processes N).")
        return
    if args.shard_count is None:
        raise InvalidInput(f"--shards {args.shards} needs --shard-count N, the bot's total number of shards.")
    try:
        args.shard_ids = parse_shards(args.shards)
    except ValueError as exc:
        raise InvalidInput(f"--shards: {exc}.") from None
    if not 1 <= args.shard_count <= 10_000 or args.shard_ids[-1] >= args.shard_count:
        raise InvalidInput(
            f"--shards {args.shards} of --shard-count {args.shard_count}: shard ids run from 0 to "
            f"{max(args.shard_count, 1) - 1}."
        )


def _name_the_process(label: str, config: Config) -> None:
    """Every log line says which process and which shards it comes from, as text or JSON."""
    audit.use_format(config.log_format, label)


async def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from bot.client import discord_token, run_bot, shard_label

    # In the README's order: the Discord token, the settings, the library, then the speech set-up
    token = discord_token(config)
    check(config)

    if library_exists(config):  # a damaged library is one line now, not a traceback after login
        store = await asyncio.to_thread(open_store, config, writes=False)
        await asyncio.to_thread(store.close)
    await _check_speech(config)
    logging.getLogger().setLevel(logging.INFO)
    if getattr(args, "processes", None):
        from bot.launcher import launch

        _name_the_process("launcher", config)
        try:
            return await launch(config, args.processes, token, args.shard_count)
        except _discord_errors() as exc:
            raise DiscordUnreachable(_api_base(config), _short(exc)) from None
    shards = (args.shard_ids, args.shard_count) if getattr(args, "shards", None) else None
    if shards:
        _name_the_process(shard_label(*shards), config)
    api = (args.api_host, args.api_port) if args.api_port is not None else None
    try:
        await run_bot(config, shards=shards, api=api)
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


async def cmd_api(args: argparse.Namespace, config: Config) -> int:
    from bot.api.server import listen_failure, run

    check(config)
    if library_exists(config):  # a damaged library is one line now, not a traceback on the first request
        store = await asyncio.to_thread(open_store, config, writes=False)
        await asyncio.to_thread(store.close)
    await _check_speech(config)
    logging.getLogger().setLevel(logging.INFO)
    _name_the_process(f"api {args.host}:{args.port}", config)
    try:
        await run(config, args.host, args.port)
    except OSError as exc:  # the port is taken, or the address isn't this machine's
        raise InvalidInput(f"Can't listen on {args.host}:{args.port}: {listen_failure(exc)}.") from None
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
        epilog=examples(
            "voicebot run --backend local --weights ./weights --api-port 8080",
            "voicebot run --processes 4",
            "voicebot run --shards 0-3 --shard-count 8",
        ),
    )
    speech_options(run)
    scale = run.add_argument_group(
        "more than one process (the library in PostgreSQL, or SQLite on one machine)"
    )
    scale.add_argument("--shards", metavar="A-B", help="run these shards only, e.g. 0-3 (with --shard-count)")
    scale.add_argument("--shard-count", type=int, metavar="N", help="the bot's total number of shards")
    scale.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="run N processes, splitting Discord's recommended shards between them; restart any that dies",
    )
    served = run.add_argument_group("the speech API in the same process (one process only)")
    served.add_argument(
        "--api-port",
        type=ranged(1, 65535),
        metavar="PORT",
        help="also serve the OpenAI-compatible speech API on PORT, sharing this bot's speech engine",
    )
    served.add_argument(
        "--api-host", default="127.0.0.1", metavar="HOST", help="its address (default: 127.0.0.1)"
    )
    # checks its settings and speech set-up itself, in its own order
    library_command(run, cmd_run, check_args=_check_scale)

    api = commands.add_parser(
        "api",
        help="serve the OpenAI-compatible speech API over HTTP (keys: voicebot apikey)",
        epilog=examples(
            "voicebot api",
            "voicebot api --host 0.0.0.0 --port 8080   # behind a TLS reverse proxy (README)",
        ),
    )
    api.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    api.add_argument("--port", type=ranged(1, 65535), default=8080, help="port to listen on (default: 8080)")
    speech_options(api)
    library_command(api, cmd_api)

    sync = commands.add_parser(
        "sync",
        help="register the slash commands with Discord, then exit",
        epilog=examples("voicebot sync", "VOICEBOT_DEV_GUILD=123 voicebot sync"),
    )
    library_command(sync, cmd_sync)  # registers commands only: no speech backend is made or checked
