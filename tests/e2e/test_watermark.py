"""The watermark end to end on the loopback Discord: speech the bot posts is found marked by the
"Check for AI voice" context menu and by `voicebot verify`; a member's own upload is not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from bot.audio.clip import load_clip
from bot.cli import main
from modal_tts.output import encode
from modal_tts.params import SAMPLES_PER_LATENT
from tests.e2e.conftest import World

pytestmark = pytest.mark.slow

SPEECH = Path(__file__).parents[1] / "speech"


def speech(name: str) -> np.ndarray:
    return load_clip((SPEECH / name).read_bytes(), max_bytes=10**8)


async def test_a_say_file_is_found_marked_and_a_clean_upload_is_not(
    world: World, tiny_model_dir, tmp_path, monkeypatch
):
    # Random weights make noise, which Perth's mark doesn't hold in; the tiny engine decodes real speech
    # here instead, and everything after the decode (marking, levelling, encoding, posting) is the bot's.
    engine = world.backend.inner._engine
    spoken = np.tile(speech("rms-reference.ogg"), 4)
    monkeypatch.setattr(
        engine, "decode", lambda latents, index, end: spoken[: end * SAMPLES_PER_LATENT].copy()
    )
    world.add_voice("Ada", world.alice)
    record = await world.fake.invoke(
        "say", {"text": "Hello there, everyone.", "voice": "Ada", "seed": 3}, user=world.alice
    )
    await record.wait_for(lambda r: r.kind == "edit" and "Ada" in (r.content or ""), timeout=60)
    posted = await world.fake.wait_for_message(lambda m: bool(m.files))
    (upload,) = posted.files

    message = world.fake.world.messages[posted.message_id]
    checked = await world.fake.invoke_message_command("Check for AI voice", message=message, user=world.bob)
    found = await checked.wait_for(lambda r: "watermark" in (r.content or ""), timeout=60)
    assert checked.ephemeral and "carries this bot's AI-voice watermark (confidence" in found.content
    assert "not which bot or server" in found.content

    clean = world.fake.add_message(
        world.text_channel,
        world.bob,
        "my own recording",
        attachments=[("mine.ogg", encode(speech("kal-reference.ogg"), "ogg"))],
    )
    checked = await world.fake.invoke_message_command("Check for AI voice", message=clean, user=world.alice)
    answer = await checked.wait_for(lambda r: "watermark" in (r.content or ""), timeout=60)
    assert checked.ephemeral and "No AI-voice watermark found in this audio (confidence" in answer.content

    text_only = world.fake.add_message(world.text_channel, world.bob, "no audio here")
    checked = await world.fake.invoke_message_command(
        "Check for AI voice", message=text_only, user=world.alice
    )
    refused = await checked.wait_for(lambda r: "no audio to check" in (r.content or ""), timeout=20)
    assert refused.ephemeral

    monkeypatch.chdir(tmp_path)  # no stray .env
    said, mine = tmp_path / "said.ogg", tmp_path / "mine.ogg"
    said.write_bytes(upload.data)
    mine.write_bytes(encode(speech("kal-reference.ogg"), "ogg"))
    local = ["--backend", "local", "--weights", str(tiny_model_dir), "--device", "cpu"]
    assert await asyncio.to_thread(main, ["verify", *local, str(said)]) == 0
    assert await asyncio.to_thread(main, ["verify", *local, str(mine)]) == 1
