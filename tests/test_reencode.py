"""Voices follow the engine's model (`bot.reencode`, `voicebot reencode`): a voice whose latent another
model revision made is re-encoded from its kept recording, which stays as it was; a run that stops is
continued by the next; a voice without its recording keeps its old latent and doctor lists it.

The bot's policies (one voice at a time, members first, Modal asked rarely, shards) on a fake engine
over both library engines; the command and doctor on two tiny models whose weights differ, as a model
upgrade would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bot import audio
from bot.cli import main
from bot.errors import BackendFailed, BackendUnreachable
from bot.reencode import ModelFollower
from bot.store import Voice, VoiceLibrary
from bot.tts import SpeakerLatent
from tests import media
from tests.engines import lose_reference, stored_reference
from tests.test_cli import GOOD_CLIP
from tests.test_store import LATENT, add

NEW_LATENT = np.full((8, 80), 0.5, np.float16)


class FakeEngine:
    """A backend that answers with `revision`; `fail[i]` is raised by the i-th encoding (from 1)."""

    def __init__(self, revision: str = "echo-new", name: str = "local") -> None:
        self.revision, self.name = revision, name
        self.encoded = 0
        self.asked = 0
        self.fail: dict[int, Exception] = {}

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        self.encoded += 1
        if self.encoded in self.fail:
            raise self.fail[self.encoded]
        return SpeakerLatent(NEW_LATENT, self.revision)

    async def info(self) -> dict[str, str]:
        self.asked += 1
        return {"revision": self.revision}

    async def close(self) -> None:
        pass


REFERENCE = audio.encode(media.speech_like(6.0), "flac")


def voice(store: VoiceLibrary, guild: int, name: str, revision: str = "echo-old") -> Voice:
    return add(store, guild, name, reference_flac=REFERENCE, revision=revision)


def revisions(store: VoiceLibrary) -> dict[str, str]:
    return {v.name: v.revision for v in store.all_voices()}


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr("bot.reencode.PAUSE_S", 0.0)
    monkeypatch.setattr("bot.reencode.BUSY_WAIT_S", 0.0)


async def test_a_round_reencodes_the_voices_behind_the_engine_and_keeps_their_recordings(
    open_test_library, caplog
):
    store = open_test_library()
    ada, bob = voice(store, 1, "Ada"), voice(store, 2, "Bob")
    voice(store, 1, "Cy", revision="echo-new")
    engine = FakeEngine()
    with caplog.at_level(logging.INFO, logger="voicebot.audit"):
        outcome = await ModelFollower(store, engine).round()
    assert outcome is not None and sorted(v.name for v in outcome.done) == ["Ada", "Bob"]
    assert revisions(store) == {"Ada": "echo-new", "Bob": "echo-new", "Cy": "echo-new"}
    for kept in (ada, bob):
        np.testing.assert_array_equal(store.load_latent(kept), NEW_LATENT)
        assert stored_reference(store, kept) == REFERENCE and store.read_reference(kept) == REFERENCE
    audited = [r.audit for r in caplog.records if getattr(r, "audit", {}).get("event") == "reencode"]
    assert sorted((a["guild"], a["voice"], a["actor"], a["revision"]) for a in audited) == sorted(
        [(1, ada.id, "bot", "echo-new"), (2, bob.id, "bot", "echo-new")]
    )
    assert await ModelFollower(store, engine).round() is None and engine.encoded == 2  # nothing left


async def test_a_bot_stopped_after_one_voice_continues_where_it_stopped(open_test_library, monkeypatch):
    store = open_test_library()
    for name in ("Ada", "Bob", "Cy"):
        voice(store, 1, name)
    second = asyncio.Event()

    class StopsAtTheSecond(FakeEngine):
        async def encode_speaker(self, pcm):
            if self.encoded == 1:
                second.set()
                await asyncio.Event().wait()  # the process is stopped here
            return await super().encode_speaker(pcm)

    running = asyncio.create_task(ModelFollower(store, StopsAtTheSecond()).run())
    await asyncio.wait_for(second.wait(), 30)
    running.cancel()
    assert sorted(revisions(store).values()) == ["echo-new", "echo-old", "echo-old"]

    engine = FakeEngine()  # the next start
    outcome = await ModelFollower(store, engine).round()
    assert outcome is not None and len(outcome.done) == 2 and engine.encoded == 2
    assert set(revisions(store).values()) == {"echo-new"}


async def test_a_voice_without_its_recording_keeps_its_old_latent(open_test_library, caplog):
    store = open_test_library()
    lost, fine = voice(store, 1, "Lost"), voice(store, 1, "Fine")
    lose_reference(store, lost)
    engine = FakeEngine()
    follower = ModelFollower(store, engine)
    with caplog.at_level(logging.WARNING, logger="bot.reencode"):
        outcome = await follower.round()
    assert outcome is not None and [v.name for v in outcome.kept] == ["Lost"]
    assert revisions(store) == {"Lost": "echo-old", "Fine": "echo-new"}
    np.testing.assert_array_equal(store.load_latent(lost), LATENT)  # still speaks, in its old latent
    assert stored_reference(store, fine) == REFERENCE
    assert [r for r in caplog.records if lost.id in r.getMessage() and "keeps its latent" in r.getMessage()]
    assert await follower.round() is None  # not tried again by this process


async def test_a_failing_voice_is_retried_next_round_and_a_backend_down_stops_a_round(open_test_library):
    store = open_test_library()
    for name in ("Ada", "Bob"):
        voice(store, 1, name)
    engine = FakeEngine()
    engine.fail = {1: BackendFailed("a bad day"), 3: BackendUnreachable("no network")}
    follower = ModelFollower(store, engine)
    outcome = await follower.round()
    assert outcome is not None and [v.name for v in outcome.done] == ["Bob"]
    assert [(v.name, why) for v, why in outcome.failed] == [("Ada", "a bad day")]
    with pytest.raises(BackendUnreachable):  # every voice would meet it: the round stops
        await follower.round()
    outcome = await follower.round()
    assert outcome is not None and [v.name for v in outcome.done] == ["Ada"]
    assert set(revisions(store).values()) == {"echo-new"}


async def test_members_speech_goes_first(open_test_library):
    store = open_test_library()
    voice(store, 1, "Ada")
    engine = FakeEngine()
    answers = iter([True, True, True, False])
    seen: list[int] = []  # encodings made by the time each answer was asked for

    def busy() -> bool:
        seen.append(engine.encoded)
        return next(answers)

    await ModelFollower(store, engine, busy=busy).round()
    assert seen == [0, 0, 0, 0] and engine.encoded == 1


async def test_a_bot_that_is_never_idle_still_moves_on_by_one_voice_after_the_longest_wait(
    open_test_library, monkeypatch
):
    monkeypatch.setattr("bot.reencode.BUSY_WAIT_S", 0.25)
    monkeypatch.setattr("bot.reencode.BUSIEST_WAIT_S", 1.0)
    store = open_test_library()
    voice(store, 1, "Ada")
    engine, asked = FakeEngine(), []
    await ModelFollower(store, engine, busy=lambda: not asked.append(1)).round()
    assert len(asked) == 5 and engine.encoded == 1  # four waits of 0.25 s, then on


async def test_each_process_reencodes_the_voices_of_its_own_shards(open_test_library):
    store = open_test_library()
    here, there = 1 << 22, 2 << 22  # shards 1 and 0 of 2
    voice(store, here, "Mine")
    voice(store, there, "Theirs")
    await ModelFollower(store, FakeEngine(), mine=lambda guild: (guild >> 22) % 2 == 1).round()
    assert revisions(store) == {"Mine": "echo-new", "Theirs": "echo-old"}


async def test_modal_is_asked_its_model_once_and_again_only_when_a_new_voice_shows_another(
    open_test_library,
):
    store = open_test_library()
    engine = FakeEngine(name="modal")
    follower = ModelFollower(store, engine)
    assert await follower.round() is None and engine.asked == 0  # no voices: no GPU woken to ask
    voice(store, 1, "Ada")
    await follower.round()
    await follower.round()
    assert engine.asked == 1 and revisions(store) == {"Ada": "echo-new"}

    engine.revision = "echo-newer"  # redeployed; the first voice cloned after it carries the new model
    voice(store, 1, "Bea", revision="echo-newer")
    await follower.round()
    assert engine.asked == 2 and revisions(store) == {"Ada": "echo-newer", "Bea": "echo-newer"}


async def test_a_voice_two_engines_fight_over_is_left_alone(open_test_library, caplog):
    store = open_test_library()
    ada = voice(store, 1, "Ada")
    engine = FakeEngine()
    follower = ModelFollower(store, engine)
    await follower.round()
    store.replace_latent(ada, LATENT, "echo-other")  # another bot with other weights on this library
    with caplog.at_level(logging.WARNING, logger="bot.reencode"):
        assert await follower.round() is None
    assert engine.encoded == 1 and revisions(store) == {"Ada": "echo-other"}
    assert any("another engine" in r.getMessage() for r in caplog.records)


# --- `voicebot reencode` and doctor on two tiny models -------------------------------------------------


@pytest.fixture(scope="module")
def upgraded_model(tmp_path_factory) -> Path:
    """The tiny model with other weights: another revision, other latents."""
    from modal_tts.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-echo-upgraded"), seed=1)


@pytest.fixture
def voicebot(tmp_path, capsys, monkeypatch):
    """`voicebot ARGS` in-process on this test's data folder; `model` picks the weights."""
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("VOICEBOT_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, model: Path | None = None) -> tuple[int, str, str]:
        extra = ["--data-dir", str(tmp_path / "data")]
        if model is not None:
            extra += ["--backend", "local", "--weights", str(model), "--device", "cpu"]
        code = main([args[0], *extra, *args[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _clone(voicebot, model: Path, guild: int, name: str) -> str:
    code, out, err = voicebot("clone", "--guild", str(guild), "--name", name, "--consent", "7", "--json",
                              "ada.ogg", model=model)  # fmt: skip
    assert code == 0, err
    return json.loads(out)["id"]


def _files(tmp_path: Path) -> dict[str, bytes]:
    voices = tmp_path / "data" / "voices"
    return {str(p.relative_to(voices)): p.read_bytes() for p in sorted(voices.rglob("*.*")) if p.is_file()}


@pytest.mark.slow
def test_voicebot_reencode_moves_voices_to_the_new_model_and_keeps_their_recordings(
    voicebot, tmp_path, tiny_model_dir, upgraded_model, caplog
):
    (tmp_path / "ada.ogg").write_bytes(GOOD_CLIP)
    for guild, name in ((1, "Ada"), (1, "Bob"), (2, "Cy")):
        _clone(voicebot, tiny_model_dir, guild, name)
    before = _files(tmp_path)
    old = {v["name"]: v["revision"] for v in json.loads(voicebot("voices", "--guild", "1", "--json")[1])}

    code, out, err = voicebot("reencode", "--guild", "2", "--json", model=upgraded_model)
    summary = json.loads(out)
    assert (code, err, len(summary["reencoded"]), summary["voices"]) == (0, "", 1, 1)
    new = summary["revision"]
    assert new.startswith("echo-") and new != old["Ada"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="voicebot.audit"):
        code, out, err = voicebot("reencode", model=upgraded_model)
    assert (code, err) == (0, "")
    assert out == f"Model {new}: re-encoded 2 voices; 3 of 3 now carry it.\n"
    audited = [r.audit for r in caplog.records if getattr(r, "audit", {}).get("event") == "reencode"]
    assert [(a["actor"], a["guild"], a["revision"]) for a in audited] == [("cli", 1, new)] * 2

    after = _files(tmp_path)
    references = {path for path in before if path.endswith("reference.flac")}
    assert len(references) == 3 and all(after[path] == before[path] for path in references)
    assert all(after[path] != before[path] for path in before if path.endswith("latent.npy"))
    for guild in ("1", "2"):
        assert {v["revision"] for v in json.loads(voicebot("voices", "--guild", guild, "--json")[1])} == {new}

    assert voicebot("reencode", model=upgraded_model)[:2] == (0, f"All 3 voices already carry model {new}.\n")


@pytest.mark.slow
def test_a_voice_without_its_recording_keeps_its_latent_and_doctor_lists_it(
    voicebot, tmp_path, tiny_model_dir, upgraded_model
):
    (tmp_path / "ada.ogg").write_bytes(GOOD_CLIP)
    lost = _clone(voicebot, tiny_model_dir, 1, "Lost")
    _clone(voicebot, tiny_model_dir, 1, "Fine")
    folder = tmp_path / "data" / "voices" / "1" / lost
    (folder / "reference.flac").unlink()
    latent = (folder / "latent.npy").read_bytes()

    _, out, _ = voicebot("doctor", model=upgraded_model)
    line = next(line for line in out.splitlines() if "Model revision" in line)
    assert (
        "0 of 2 voices encoded with it; 1 waiting for it (a running bot brings them over in the background"
        in line
    )
    assert line.endswith("1 kept their old latent (recording missing).")

    code, out, err = voicebot("reencode", model=upgraded_model)
    assert (code, err) == (0, "")
    assert f"Voice “Lost” ({lost}, guild 1) keeps its latent from model echo-" in out
    assert (folder / "latent.npy").read_bytes() == latent and not (folder / "reference.flac").exists()

    _, out, _ = voicebot("doctor", model=upgraded_model)
    line = next(line for line in out.splitlines() if "Model revision" in line)
    assert line.endswith("1 of 2 voices encoded with it; 1 kept their old latent (recording missing).")
    assert f"Voice “Lost” ({lost}, guild 1) keeps its latent from model echo-" in out
    spoken = voicebot(
        "say", "--guild", "1", "--voice", "Lost", "--out", "lost.ogg", "Hi.", model=upgraded_model
    )
    assert spoken[0] == 0  # its old latent still speaks


@pytest.mark.slow
def test_voicebot_reencode_exits_1_when_a_voice_failed_and_0_once_a_rerun_did_it(
    voicebot, tmp_path, tiny_model_dir, upgraded_model, monkeypatch
):
    from bot.tts.local_backend import LocalBackend

    (tmp_path / "ada.ogg").write_bytes(GOOD_CLIP)
    for name in ("Ada", "Bob"):
        _clone(voicebot, tiny_model_dir, 1, name)
    encode = LocalBackend.encode_speaker
    calls = []

    async def fails_once(self, pcm):
        calls.append(1)
        if len(calls) == 1:
            raise BackendFailed("CUDA error: an illegal memory access")
        return await encode(self, pcm)

    monkeypatch.setattr(LocalBackend, "encode_speaker", fails_once)
    monkeypatch.setattr("bot.cli.common.stderr_is_terminal", lambda: True)  # progress lines on stderr
    code, out, err = voicebot("reencode", "--json", model=upgraded_model)
    summary = json.loads(out)
    assert (code, len(summary["reencoded"]), summary["current"]) == (1, 1, 1)
    progress = err.splitlines()
    assert progress[0] == "voicebot: Asking the local backend which model it runs…"
    assert progress[1] == f"voicebot: Model {summary['revision']}: 2 voices of 2 to re-encode."
    assert progress[2].startswith("voicebot: 1 of 2: “Ada” (") and progress[2].endswith(
        "failed (CUDA error: an illegal memory access)."
    )
    assert progress[3].startswith("voicebot: 2 of 2: “Bob” (") and progress[3].endswith(" re-encoded.")
    assert [f["error"] for f in summary["failed"]] == ["CUDA error: an illegal memory access"]

    code, out, _ = voicebot("reencode", model=upgraded_model)
    assert code == 0 and "re-encoded 1 voice; 2 of 2 now carry it." in out
