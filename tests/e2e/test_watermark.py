"""The watermark end to end on the loopback Discord: speech the bot posts is found marked by the
"Check for AI voice" context menu and by `voicebot verify`; a member's own upload is not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from bot.audio.clip import WATERMARK_THRESHOLD, load_clip
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


async def test_an_mp3_file_and_live_voice_carry_the_mark(world: World, monkeypatch):
    """The bot's other deliveries: an MP3 file (the server's file format) and live voice, as the fake
    voice server received its Opus packets, decoded back to 48 kHz."""
    engine = world.backend.inner._engine
    spoken = np.tile(speech("slt-reference.ogg"), 4)
    monkeypatch.setattr(
        engine, "decode", lambda latents, index, end: spoken[: end * SAMPLES_PER_LATENT].copy()
    )
    world.add_voice("Ada", world.alice)
    await (await world.fake.invoke("settings", {"file_format": "mp3"}, user=world.admin)).wait_for_answer()
    record = await world.fake.invoke(
        "say", {"text": "A file, please.", "voice": "Ada", "mode": "file"}, user=world.alice
    )
    final = await record.wait_for(lambda r: r.kind == "edit" and r.files, timeout=60)
    (upload,) = final.files
    assert upload.filename == "Ada.mp3"
    assert engine.watermark_confidence(load_clip(upload.data, max_bytes=10**8)) >= WATERMARK_THRESHOLD

    await world.join_voice(world.alice)
    record = await world.fake.invoke(
        "say",
        {"text": "Now in the voice channel, please.", "voice": "Ada", "mode": "channel"},
        user=world.alice,
    )
    await world.fake.wait_until(lambda: len(world.fake.voice_packets(world.guild)) > 150, timeout=90)
    heard = world.fake.voice_pcm(world.guild, mono=True)
    assert float(np.abs(heard).max()) > 0.01
    assert engine.watermark_confidence(heard, 48000) >= WATERMARK_THRESHOLD
    # the same speech, unmarked, is not taken for marked
    assert engine.watermark_confidence(spoken[: heard.size]) < WATERMARK_THRESHOLD
