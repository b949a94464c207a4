"""The watermark: marked output keeps its length and its highs, is found after every way the bot delivers
it and after a 32 kbps re-encode, clean audio isn't; the scheduler marks every piece once; the app, both
backends and `voicebot verify` check a clip."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modal import exception as mx

from bench.watermark import DELIVERIES
from bot.audio.clip import MIN_CLIP_S, WATERMARK_THRESHOLD, load_clip
from bot.cli.verify import verdict
from bot.errors import BackendOutdated, NotAudio
from bot.errors.watermark import ClipTooLarge, ClipTooShort
from bot.tts.local_backend import LocalBackend
from bot.tts.modal_backend import ModalBackend
from modal_tts import plans, wire
from modal_tts.output import encode, stitch
from modal_tts.params import SAMPLE_RATE, SAMPLES_PER_LATENT, SynthesisParams
from modal_tts.scheduler import run_inline
from modal_tts.watermark import FADE_SAMPLES, THRESHOLD, Watermarker
from tests import test_cli
from tests.media import speech_like
from tests.test_modal_backend import Handle, Method

SPEECH = Path(__file__).parent / "speech"
CLIPS = ("awb-reference.ogg", "slt-consent.ogg")

run = test_cli.run  # `voicebot ARGS` in-process
pytestmark = pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")  # Modal's .local()


def clip(name: str) -> np.ndarray:
    return load_clip((SPEECH / name).read_bytes(), max_bytes=10**8)


@pytest.fixture(scope="module")
def marker(tiny_engine) -> Watermarker:
    assert tiny_engine.watermarker is not None  # from_dir loads one by default
    return tiny_engine.watermarker


# --- marking ----------------------------------------------------------------------------------------


def test_marking_keeps_the_length_and_everything_above_2_khz(marker):
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    speech = clip(CLIPS[0])[: t.size]
    audio = (speech + 0.1 * np.sin(2 * np.pi * 18_000 * t)).astype(np.float32)
    marked = marker.mark(audio)
    assert marked.shape == audio.shape and marked.dtype == np.float32
    spectrum, before = np.abs(np.fft.rfft(marked)), np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
    assert spectrum[freqs == 18_000] == pytest.approx(before[freqs == 18_000], rel=1e-3)  # the tone
    change = np.abs(np.fft.rfft(marked - audio))
    assert change[freqs > 2_500].max() < 1e-3 * change[freqs < 2_000].max()  # the mark is below 2 kHz
    assert marker.confidence(marked) > 0.9 and marker.confidence(audio) < THRESHOLD


def test_the_mark_is_perths_32_khz_mark_taken_the_short_way(marker):
    """Marking's shortcuts (the change's iSTFT at 8 kHz, oneDNN convolutions and resampler, dB from the
    power) give the mark Perth's own path gives: marked magnitudes and the original phase back through
    the 32 kHz iSTFT, resampled by torchaudio."""
    import torch
    from torchaudio.transforms import Resample

    audio = clip(CLIPS[1])[: 4 * SAMPLE_RATE]
    hp, sub = marker.hp, marker.subband
    with torch.inference_mode():
        x32 = Resample(SAMPLE_RATE, hp.sample_rate)(torch.from_numpy(audio))
        assert torch.allclose(marker.down(torch.from_numpy(audio)), x32, atol=1e-5)
        window = torch.hann_window(hp.window_size)
        spectrum = torch.stft(x32, hp.n_fft, hp.hop_size, hp.window_size, window, return_complex=True)
        floor_db = 20 * np.log10(hp.stft_magnitude_min)
        span = -floor_db + 15.0  # Perth's normalize
        mag = (20 * torch.log10(spectrum.abs().clip(hp.stft_magnitude_min)) - floor_db) / span
        # What the bench times the encoder on. Bins under -60 dB (0.615 on this scale) follow the two
        # resamplers' 1e-7 differences by whole dB, so they are left out.
        heard = mag > 0.615
        assert heard.float().mean() > 0.4
        assert (marker.spectrogram(audio) - mag)[heard].abs().max() < 1e-3
        marked, _ = marker.net.encoder(mag[None])
        phase = torch.angle(spectrum)
        rebuilt = 10 ** ((marked[0] * span + floor_db) / 20) * torch.exp(1j * phase)
        original = 10 ** ((mag * span + floor_db) / 20) * torch.exp(1j * phase)
        change = torch.zeros_like(spectrum)
        change[:sub] = rebuilt[:sub] - original[:sub]
        delta32 = torch.istft(change, hp.n_fft, hp.hop_size, hp.window_size, window, length=x32.numel())
        expected = Resample(hp.sample_rate, SAMPLE_RATE)(delta32)[: audio.size].numpy()
    got = marker.mark(audio) - audio
    inside = slice(FADE_SAMPLES, audio.size - FADE_SAMPLES)  # the fade at the end is marking's own
    error = np.linalg.norm(got[inside] - expected[inside]) / np.linalg.norm(expected[inside])
    assert np.abs(expected).max() > 1e-3 and error < 0.005


@pytest.mark.parametrize("seconds", [0.3, 1.0, 7.3])
def test_any_length_comes_back_as_long(marker, seconds):
    audio = speech_like(seconds)
    assert marker.mark(audio).shape == audio.shape


def test_empty_short_and_silent_audio_read_as_unmarked(marker):
    assert marker.confidence(np.zeros(0, np.float32)) == 0.0
    assert marker.confidence(speech_like(0.1)) == 0.0
    assert marker.confidence(np.zeros(SAMPLE_RATE * 2, np.float32)) == 0.0
    short = speech_like(0.1)
    np.testing.assert_array_equal(marker.mark(short), short)  # too short to mark: handed over as is
    silence = np.zeros(SAMPLE_RATE * 2, np.float32)
    np.testing.assert_array_equal(marker.mark(silence), silence)


def test_pieces_marked_with_what_came_before_join_without_a_step(marker):
    """A block's piece is marked with the chunk so far as context: its start is the whole chunk's mark,
    and the join steps no more than the unmarked audio does there."""
    audio = clip(CLIPS[0])
    bounds = [0, 2 * SAMPLE_RATE, 3 * SAMPLE_RATE + 1000, 6 * SAMPLE_RATE, audio.size]
    pieces = [marker.mark(audio[:end], heard=start) for start, end in itertools.pairwise(bounds)]
    joined = np.concatenate(pieces)
    assert joined.shape == audio.shape and marker.confidence(joined) > 0.9
    whole = marker.mark(audio)
    inside = slice(bounds[1] + FADE_SAMPLES, bounds[2] - SAMPLE_RATE // 2)  # away from both joins
    np.testing.assert_allclose(joined[inside], whole[inside], atol=1e-4)
    for seam in bounds[1:-1]:
        step = abs(joined[seam] - joined[seam - 1])
        assert step <= abs(audio[seam] - audio[seam - 1]) + 1e-3


# --- after delivery ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delivery", [d for d in DELIVERIES if d != "as_made"])
@pytest.mark.parametrize("name", CLIPS)
def test_the_mark_survives_every_delivery_and_clean_audio_stays_clean(marker, name, delivery):
    audio = clip(name)
    assert marker.confidence(*DELIVERIES[delivery](marker.mark(audio))) >= THRESHOLD
    assert marker.confidence(*DELIVERIES[delivery](audio)) < THRESHOLD


@pytest.mark.parametrize("seed", range(3))
def test_clean_noise_and_made_up_voices_are_not_taken_for_marked(marker, seed):
    rng = np.random.default_rng(seed)
    assert marker.confidence((0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)) < THRESHOLD
    assert marker.confidence(speech_like(6.0, seed=seed)) < THRESHOLD


# --- the scheduler ----------------------------------------------------------------------------------


class SpeakingEngine:
    """The tiny engine, except that its decode is real speech (random weights make noise, which Perth's
    mark doesn't hold in): the decoder is causal, so the first `end` latents' audio is a fixed prefix."""

    def __init__(self, engine: Any, speech: np.ndarray) -> None:
        self.engine, self.speech = engine, speech

    def decode(self, latents: Any, index: int, end: int) -> np.ndarray:
        return self.speech[: end * SAMPLES_PER_LATENT].copy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def test_the_scheduler_marks_every_piece_once_with_the_chunk_so_far(tiny_engine, tiny_latent, marker):
    speech = np.tile(clip(CLIPS[0]), 4)
    engine = SpeakingEngine(tiny_engine, speech)
    params = SynthesisParams(steps=2, block_plan=plans.LOW_LATENCY, silence_guard_s=None)
    text = "[S1] " + "This sentence is long enough to be given all three blocks of the plan. " * 2
    pieces = [p.audio for p in run_inline(engine, [text], tiny_latent, params, seed=1, pieces=True)]
    assert len(pieces) > 1
    bounds = np.cumsum([0, *(p.size for p in pieces)])
    for piece, start, end in zip(pieces, bounds, bounds[1:], strict=False):
        np.testing.assert_array_equal(piece, marker.mark(speech[:end], heard=start))
    assert marker.confidence(np.concatenate(pieces)) > 0.9
    (whole,) = [c.audio for c in run_inline(engine, [text], tiny_latent, SynthesisParams(steps=2), seed=1)]
    assert marker.confidence(whole) > 0.9  # the whole plan: one piece, marked


def test_an_engine_loaded_without_the_watermark_hands_over_its_audio(tiny_model_dir, tiny_latent):
    from modal_tts.engine import EchoEngine

    plain = EchoEngine.from_dir(tiny_model_dir, device="cpu", watermark=False)
    assert plain.watermarker is None
    speech = clip(CLIPS[0])
    engine = SpeakingEngine(plain, np.tile(speech, 4))
    (chunk,) = run_inline(engine, ["[S1] Hello there."], tiny_latent, SynthesisParams(steps=2), seed=1)
    np.testing.assert_array_equal(chunk.audio, engine.speech[: chunk.audio.size])


# --- the app and the backends -----------------------------------------------------------------------


def test_the_threshold_is_one_on_both_sides():
    assert WATERMARK_THRESHOLD == THRESHOLD


def test_the_image_pins_perth_and_what_it_imports():
    from importlib.metadata import version

    source = (Path(__file__).parents[1] / "modal_tts" / "app.py").read_text()
    for package in ("resemble-perth", "setuptools", "pyyaml", "scipy", "librosa"):
        assert f'"{package}=={version(package)}"' in source, package
    assert int(version("setuptools").split(".")[0]) < 81  # perth imports pkg_resources


def test_the_app_checks_a_clip(echo_tts, marker):
    audio = clip(CLIPS[1])
    found = echo_tts.check_watermark.local(wire.pcm_to_bytes(marker.mark(audio)))
    assert found["found"] is True and found["confidence"] > 0.9
    clean = echo_tts.check_watermark.local(wire.pcm_to_bytes(audio))
    assert clean["found"] is False and clean["confidence"] < THRESHOLD
    assert echo_tts.check_watermark.local(b"") == {"confidence": 0.0, "found": False}


async def test_the_local_backend_checks_on_the_engine_thread(tiny_engine, marker):
    backend = LocalBackend(engine=tiny_engine)
    try:
        audio = clip(CLIPS[1])
        assert await backend.watermark_confidence(marker.mark(audio)) > 0.9
        assert await backend.watermark_confidence(audio) < THRESHOLD
        assert backend.batches_run == 0  # a call between batches, not a batch
    finally:
        await backend.close()


async def test_the_modal_backend_calls_check_watermark(echo_tts, marker):
    sent: list[bytes] = []

    async def remote(pcm: bytes) -> dict[str, Any]:
        sent.append(pcm)
        return await asyncio.to_thread(echo_tts.check_watermark.local, pcm)

    check = type("Method", (), {"remote": type("Remote", (), {"aio": staticmethod(remote)})()})()
    backend = ModalBackend(lookup=lambda: Handle(check_watermark=check), retry_delay=0, timeout=60)
    audio = clip(CLIPS[1])
    assert await backend.watermark_confidence(marker.mark(audio)) > 0.9
    assert await backend.watermark_confidence(audio) < THRESHOLD
    assert wire.pcm_from_bytes(sent[1]).size == audio.size


async def test_an_app_without_check_watermark_says_redeploy():
    missing = mx.NotFoundError("Class has no method `check_watermark`")
    backend = ModalBackend(lookup=lambda: Handle(check_watermark=Method([missing])), retry_delay=0)
    with pytest.raises(BackendOutdated, match="another version of this bot"):
        await backend.watermark_confidence(speech_like(1.0))


# --- a clip to check --------------------------------------------------------------------------------


def test_clips_of_any_length_from_half_a_second_decode():
    assert load_clip(encode(speech_like(0.8), "ogg"), max_bytes=10**6).size == pytest.approx(
        0.8 * SAMPLE_RATE, abs=0.02 * SAMPLE_RATE
    )
    with pytest.raises(ClipTooShort):
        load_clip(encode(speech_like(MIN_CLIP_S / 2), "ogg"), max_bytes=10**6)
    with pytest.raises(ClipTooLarge):
        load_clip(encode(speech_like(2.0), "ogg"), max_bytes=100)
    with pytest.raises(NotAudio):
        load_clip(b"hello, not audio", max_bytes=10**6)


def test_verify_exits_0_when_marked_1_when_clean_2_when_it_cant_check(run, tmp_path, tiny_model_dir, marker):
    audio = clip(CLIPS[0])
    marked, clean, garbage = tmp_path / "marked.ogg", tmp_path / "clean.mp3", tmp_path / "notes.ogg"
    marked.write_bytes(encode(stitch([marker.mark(audio)]), "ogg"))
    clean.write_bytes(encode(stitch([audio]), "mp3"))
    garbage.write_bytes(b"OggS but not really" * 10)
    local = ["--backend", "local", "--weights", str(tiny_model_dir), "--device", "cpu"]

    code, out, err = run("verify", *local, str(marked))
    assert code == 0 and err == ""
    assert out.startswith(f"{marked}: carries this bot's AI-voice watermark (confidence ")
    code, out, err = run("verify", *local, str(clean))
    assert code == 1 and err == "" and out.startswith(f"{clean}: no watermark found (confidence 0.")
    for bad in (tmp_path / "missing.ogg", tmp_path, garbage):
        code, out, err = run("verify", *local, str(bad))
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("voicebot: ")
    assert not (tmp_path / "data").exists()  # nothing written


def test_verdict_wording():
    assert verdict("a.ogg", 0.994) == "a.ogg: carries this bot's AI-voice watermark (confidence 0.99)"
    assert verdict("a.ogg", 0.02) == "a.ogg: no watermark found (confidence 0.02)"
