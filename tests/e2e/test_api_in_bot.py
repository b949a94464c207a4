"""`voicebot run --api-port`: the speech API served from the bot's own process, on its library, its
limits and its speech engine, and closed with the bot."""

from __future__ import annotations

import httpx
import pytest

from bot.cli.main import build_parser
from bot.errors import InvalidInput
from tests.e2e.conftest import World


@pytest.fixture
def api_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


async def test_the_bot_serves_the_api_on_its_own_engine_and_limits(world: World):
    bot = world.bot
    assert bot.api_runner is not None
    port = bot.api_runner.addresses[0][1]
    world.add_voice("Ada", world.alice)
    bot.store.update_settings(world.guild.id, cooldown_s=60)
    _, key = bot.store.create_api_key(world.guild.id, created_by=world.admin.id, name="overlay")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        auth = {"Authorization": f"Bearer {key}"}
        body = {
            "model": "tts-1",
            "voice": "Ada",
            "input": "From the bot's own process.",
            "response_format": "wav",
        }
        spoken = await http.post("/v1/audio/speech", headers=auth, json=body)
        assert spoken.status_code == 200 and len(spoken.content) > 44
        assert "[S1] From the bot's own process." in world.backend.texts  # the bot's own backend spoke it
        again = await http.post("/v1/audio/speech", headers=auth, json=body)
        assert again.status_code == 429  # the bot's limits: the key's creator is cooling down
    await world.fake.wait_until(lambda: bot.limits.reserved_seconds(world.guild.id) == 0, timeout=30)
    ((user, seconds),) = bot.store.db.execute("select user_id, audio_seconds from usage").fetchall()
    assert user == world.admin.id and seconds > 0


def test_one_process_serves_it_not_several():
    from bot.cli.service import _check_scale

    args = build_parser().parse_args(["run", "--processes", "2", "--api-port", "8080"])
    with pytest.raises(InvalidInput, match="voicebot api"):
        _check_scale(args)
    args = build_parser().parse_args(["run", "--api-port", "8080"])
    _check_scale(args)
    assert (args.api_host, args.api_port) == ("127.0.0.1", 8080)


async def test_a_port_the_bot_cant_take_is_one_line(world: World):
    import socket

    from bot.config import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"Can't listen on 127.0.0.1:{port} for the speech API: "):
            await world.bot._serve_api("127.0.0.1", port)
