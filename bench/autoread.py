"""Auto-read latency: `python -m bench.autoread [--runs 20] [--chunk-seconds 0.3]` prints JSON.

The real bot (`bot.client.VoiceBot`) on the loopback Discord, with DAVE, auto-read on for one member who
sits in the bot's voice channel; its speech backend is a paced replay that makes each chunk in
`--chunk-seconds` and answers with audio made in advance. Each run: the member posts a message, and the
time until the first voice packet of it reaches the voice server is measured; the bot's overhead is that
time minus the backend's chunk time (everything the bot does: receiving the message, its rules, the
library, planning, the queue, Opus encoding and sending). Between runs the speech is skipped, so every
message finds the queue idle, as a conversation usually does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import discord

from bench.load import PacedReplayBackend
from bot.client import VoiceBot, point_at_discord
from bot.config import Config


async def measure(runs: int, chunk_s: float) -> dict[str, Any]:
    from tests.fakediscord import FakeDiscord, Intent

    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeDiscord(patch_discord=False) as fake:
            fake.privileged_intents |= Intent.MESSAGE_CONTENT
            guild = fake.add_guild("Bench")
            ada = fake.add_member(guild, "Ada")
            text = next(c for c in guild.channels.values() if c.type == 0)
            voice = next(c for c in guild.channels.values() if c.type == 2)
            config = Config(
                data_dir=Path(tmp) / "data",
                backend="local",
                weights_dir=Path(tmp),
                discord_token=fake.token,
                discord_api_base=fake.api_base,
                discord_gateway=fake.gateway_url,
                voice_tls_verify=False,
            )
            point_at_discord(config)
            backend = PacedReplayBackend(in_flight=1, chunk_s=chunk_s, chunks=1)
            bot = VoiceBot(config, backend=backend, message_content=True)
            try:
                async with fake.running(bot, ready_timeout=30):
                    await fake.wait_for_commands("autoread")
                    bot.store.add(
                        guild.id, "Ada", owner_id=ada.id, reference_flac=b"fLaC",
                        latent=backend.audio[0][:640].reshape(8, 80).astype("float16"),
                        duration_s=6.0, revision="replay", consent_by=ada.id, source="bench",
                    )  # fmt: skip
                    bot.store.set_default_voice(guild.id, ada.id, "Ada")
                    bot.store.set_autoread_channel(guild.id, text.id, True)
                    bot.store.set_autoread_member(guild.id, ada.id, True)
                    await fake.member_join_voice(ada, voice)
                    channel = bot.get_channel(voice.id)
                    await fake.wait_until(lambda: ada.id in channel.voice_states, timeout=10)
                    delays = []
                    for n in range(runs + 1):  # the first run joins the channel: reported apart
                        before = len(fake.voice_packets(guild))
                        posted = time.monotonic()
                        fake.add_message(text, ada, f"Message number {n}.")
                        await fake.wait_until(lambda b=before: len(fake.voice_packets(guild)) > b, timeout=30)
                        delays.append(fake.voice_packets(guild)[before].arrival - posted)
                        bot.playback.skip(guild.id)
                        await fake.wait_until(lambda: not bot.playback.queue(guild.id), timeout=30)
                        await asyncio.sleep(0.3)  # discord.py's closing silence frames go out first
            finally:
                discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
    overheads = [(d - chunk_s) * 1000 for d in delays[1:]]
    return {
        "runs": runs,
        "chunk_s": chunk_s,
        "first_post_with_join_ms": round(delays[0] * 1000, 1),
        "first_packet_ms_median": round(statistics.median(delays[1:]) * 1000, 1),
        "bot_overhead_ms_median": round(statistics.median(overheads), 1),
        "bot_overhead_ms_p90": round(sorted(overheads)[int(0.9 * (len(overheads) - 1))], 1),
        "bot_overhead_ms_max": round(max(overheads), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autoread", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="messages measured (after the first)")
    parser.add_argument(
        "--chunk-seconds", type=float, default=0.3, help="the replay backend's time per chunk"
    )
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.runs, args.chunk_seconds)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
