"""`voicebot forget|purge`: delete everything about a member (Discord's deletion on request), and purge
the servers the bot left once their grace period (VOICEBOT_PURGE_GRACE_DAYS) has ended.

Both finish first any forget a crash left part-way. Exit 0 when done (also when there was nothing to
delete), 2 on a bad id.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from bot.cli.common import library_exists, open_store, print_json
from bot.cli.options import examples, json_option, library_command, user_id
from bot.config import Config
from bot.store.privacy import ForgetReport, PurgeReport
from bot.wording import plural

# What a forget can't reach: the one sentence both the CLI and /forget me end with.
EARLIER_COPIES = (
    "Copies made before now still hold what they held: archives written with `voicebot export` (a "
    "server's voices, with their owner, speaker and consent ids) and backups of the data folder or the "
    "database. Delete those too, or forget this member again after restoring one."
)
DAY_S = 86_400.0


def forget_lines(report: ForgetReport) -> list[str]:
    """What a forget removed, one line each, for a terminal."""
    if not report:
        return [f"Nothing was stored about member {report.user_id}."]
    lines = [f"Deleted everything stored about member {report.user_id}:"]
    lines.append(f"  {plural(report.voice_count, 'voice')} with their recordings and latents")
    for guild_id, names in sorted(report.voices.items()):
        lines.append(f"    guild {guild_id}: {', '.join(sorted(names))}")
    lines += [f"  {count} {kind}" for kind, count in report.rows.items() if count]
    return lines


async def cmd_forget(args: argparse.Namespace, config: Config) -> int:
    report, resumed = ForgetReport(args.user), []
    if library_exists(config):
        store = open_store(config, writes=True)
        try:
            resumed = await asyncio.to_thread(store.resume_forgets)
            report = await asyncio.to_thread(store.forget_user, args.user, requested_by="cli")
        finally:
            store.close()
    for earlier in resumed:  # another member's forget that a crash had cut short, finished first
        if earlier.user_id != args.user:
            print(f"Finished an interrupted deletion of member {earlier.user_id}'s data.")
        else:
            report.add(earlier)
    if args.json:
        print_json({**report.as_dict(), "earlier_copies": EARLIER_COPIES})
        return 0
    print("\n".join(forget_lines(report)))
    print(EARLIER_COPIES)
    return 0


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def cmd_purge(args: argparse.Namespace, config: Config) -> int:
    report, waiting = PurgeReport(dry_run=args.dry_run), {}
    if library_exists(config):
        store = open_store(config, writes=not args.dry_run)
        try:
            if not args.dry_run:
                await asyncio.to_thread(store.resume_forgets)
            grace_s = config.purge_grace_days * DAY_S
            report = await asyncio.to_thread(store.purge, grace_s=grace_s, dry_run=args.dry_run, actor="cli")
            waiting = await asyncio.to_thread(store.departures)
        finally:
            store.close()
    if args.json:
        print_json({**report.as_dict(), "waiting": {str(g): at for g, at in sorted(waiting.items())}})
        return 0
    verb = "Would purge" if args.dry_run else "Purged"
    for guild in report.guilds:
        rows = sum(count for table, count in guild.rows.items() if table != "departures")
        names = f" ({', '.join(guild.voices)})" if guild.voices else ""
        print(
            f"{verb} guild {guild.guild_id} (the bot left {_when(guild.left_at)}): "
            f"{plural(len(guild.voices), 'voice')}{names} and {plural(rows, 'other row')}."
        )
    if not report.guilds:
        print(f"No server's grace period ({config.purge_grace_days:g} days) has ended; nothing to purge.")
    if waiting and not args.dry_run:
        for guild_id, left_at in sorted(waiting.items(), key=lambda item: item[1]):
            due = _when(left_at + config.purge_grace_days * DAY_S)
            print(f"Guild {guild_id}: the bot left {_when(left_at)}; purged from {due} unless invited back.")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    forget = commands.add_parser(
        "forget",
        help="delete everything stored about a member, in every server",
        description=(
            "Delete a member's voices (those they own, and those of them whoever owns them), recordings, "
            "latents, usage, default voices, auto-read opt-ins, consent requests and the API keys they "
            "made, in every server. " + EARLIER_COPIES
        ),
        epilog=examples("voicebot forget --user 456", "voicebot forget --user 456 --json"),
    )
    forget.add_argument(
        "--user", type=user_id, required=True, metavar="USER_ID", help="the member's Discord user id"
    )
    json_option(forget)
    library_command(forget, cmd_forget)

    purge = commands.add_parser(
        "purge",
        help="delete the data of servers the bot left more than VOICEBOT_PURGE_GRACE_DAYS ago",
        description=(
            "The bot purges these by itself every hour; this runs it now. A server the bot was invited "
            "back to within the grace period is kept."
        ),
        epilog=examples("voicebot purge --dry-run", "voicebot purge --json"),
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, and delete nothing"
    )
    json_option(purge)
    library_command(purge, cmd_purge)
