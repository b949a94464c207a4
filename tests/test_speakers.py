"""The consent check's speaker comparison: the encoder on the spoken clips in tests/speech (flite voices,
each one real speaker's), the app's `compare_speakers`, and both backends' `speaker_similarity`."""

from __future__ import annotations

import asyncio
import pickle
from importlib.metadata import version
from pathlib import Path
from typing import Any

import modal.exception as mx
import numpy as np
import pytest

from bot.errors import (
    BackendFailed,
    BackendOutdated,
    BackendTimedOut,
    InvalidInput,
    ReferenceTooLittleSpeech,
    TooLittleSpeech,
)
from bot.tts.local_backend import LocalBackend
from bot.tts.modal_backend import ModalBackend
from modal_tts import consent_check, wire
from modal_tts.consent_check import MAX_COMPARED_SECONDS, SAME_SPEAKER_THRESHOLD
from tests import media

pytestmark = pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")

SPEECH = Path(__file__).parent / "speech"
VOICES = ("slt", "awb", "rms", "kal")


def clip(voice: str, kind: str) -> np.ndarray:
    """A spoken clip as the bot decodes it: mono float32 at 44.1 kHz."""
    channels, rate = media.decode((SPEECH / f"{voice}-{kind}.ogg").read_bytes())
    return media.resample(channels.mean(axis=0), rate, 44_100)


@pytest.fixture(scope="module")
def verifier() -> Any:
    from modal_tts.speakers import SpeakerVerifier

    return SpeakerVerifier()


@pytest.fixture(scope="module")
def scores(verifier) -> dict[tuple[str, str], float]:
    """(reference voice, consent voice) → score, for every pair of the four voices."""
    references = {v: verifier.embed(clip(v, "reference"), which="reference") for v in VOICES}
    consents = {v: verifier.embed(clip(v, "consent")) for v in VOICES}
    from modal_tts.speakers import similarity

    return {(r, c): similarity(references[r], consents[c]) for r in VOICES for c in VOICES}


# --- the encoder --------------------------------------------------------------------------------------


def test_an_embedding_is_a_256_d_unit_vector(verifier):
    embedding = verifier.embed(clip("slt", "consent"))
    assert embedding.shape == (256,) and embedding.dtype == np.float32
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("voice", VOICES)
def test_the_same_speaker_scores_above_the_threshold(scores, voice):
    assert scores[voice, voice] >= SAME_SPEAKER_THRESHOLD


@pytest.mark.parametrize(("reference", "consent"), [(r, c) for r in VOICES for c in VOICES if r != c])
def test_another_speaker_scores_below_the_threshold(scores, reference, consent):
    assert scores[reference, consent] < SAME_SPEAKER_THRESHOLD


def test_the_sample_rate_it_arrives_at_is_resampled_away(verifier):
    """The voice message at Opus's own 48 kHz embeds as the bot's 44.1 kHz copy of it does."""
    from modal_tts.speakers import similarity

    channels, rate = media.decode((SPEECH / "rms-consent.ogg").read_bytes())
    at_48k = verifier.embed(channels.mean(axis=0), sample_rate=rate)
    assert rate == 48_000 and similarity(at_48k, verifier.embed(clip("rms", "consent"))) > 0.99


def test_silence_and_a_short_word_are_too_little_speech(verifier):
    with pytest.raises(consent_check.TooLittleSpeech) as silent:
        verifier.embed(np.zeros(5 * 44_100, np.float32))
    assert silent.value.voiced_seconds == 0.0 and silent.value.which == "sample"
    short = clip("kal", "consent")[: int(0.6 * 44_100)]
    with pytest.raises(consent_check.TooLittleSpeech) as info:
        verifier.embed(short)
    assert 0 < info.value.voiced_seconds < 1.0 and "at least 1.0 s" in str(info.value)


def test_too_little_speech_names_the_recording_that_had_too_little(verifier):
    with pytest.raises(consent_check.TooLittleSpeech) as info:
        verifier.compare(np.zeros(44_100, np.float32), clip("slt", "consent"))
    assert info.value.which == "reference"


def test_too_little_speech_survives_modals_pickling():
    error = pickle.loads(pickle.dumps(consent_check.TooLittleSpeech(0.4, 1.0, "reference")))
    assert (error.voiced_seconds, error.needed_seconds, error.which) == (0.4, 1.0, "reference")


def test_the_reply_carries_a_score_or_which_recording_fell_short():
    assert consent_check.reply_from_wire(consent_check.reply_to_wire(0.875)) == 0.875
    short = consent_check.reply_to_wire(consent_check.TooLittleSpeech(0.25, 1.0, "sample"))
    with pytest.raises(consent_check.TooLittleSpeech) as info:
        consent_check.reply_from_wire(short)
    assert (info.value.voiced_seconds, info.value.which) == (0.25, "sample")
    for bad in (None, {}, {"similarity": "high"}, {"similarity": 1.5}, {"similarity": True}):
        with pytest.raises(ValueError, match="compare_speakers replied"):
            consent_check.reply_from_wire(bad)


# --- the Modal app, in-process ----------------------------------------------------------------------


def test_the_image_installs_the_speaker_encoder_pinned_and_without_its_deps():
    """The container runs the encoder and the preprocessing the tests ran; Resemblyzer's own deps would
    pull the source-only webrtcvad, so it goes in with --no-deps next to what it imports."""
    source = (Path(__file__).parents[1] / "modal_tts" / "app.py").read_text()
    for package in ("resemblyzer", "webrtcvad-wheels", "librosa", "scipy"):
        assert f'"{package}=={version(package)}"' in source, package
    assert f'.uv_pip_install("resemblyzer=={version("resemblyzer")}", extra_options="--no-deps")' in source


def test_compare_speakers_scores_two_recordings(echo_tts, verifier):
    reference, sample = clip("awb", "reference"), clip("awb", "consent")
    reply = echo_tts.compare_speakers.local(wire.pcm_to_bytes(reference), wire.pcm_to_bytes(sample))
    assert set(reply) == {"similarity"}
    assert reply["similarity"] == pytest.approx(verifier.compare(reference, sample), abs=1e-6)


def test_compare_speakers_replies_which_recording_has_too_little_speech(echo_tts):
    reference = wire.pcm_to_bytes(clip("awb", "reference"))
    silence = wire.pcm_to_bytes(np.zeros(3 * 44_100, np.float32))
    for sample in (silence, b""):
        reply = echo_tts.compare_speakers.local(reference, sample)
        short = {"which": "sample", "voiced_seconds": 0.0, "needed_seconds": 1.0}
        assert reply == {"too_little_speech": short}
    assert echo_tts.compare_speakers.local(silence, reference)["too_little_speech"]["which"] == "reference"


# --- the Modal backend ------------------------------------------------------------------------------


class Compare:
    """A handle's `compare_speakers`: Modal's `.remote.aio`, answered by `answer(reference, sample)`."""

    def __init__(self, answer: Any) -> None:
        self.calls: list[tuple[bytes, bytes]] = []

        async def call(reference: bytes, sample: bytes) -> Any:
            self.calls.append((reference, sample))
            outcome = answer(reference, sample)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        self.remote = type("Remote", (), {"aio": staticmethod(call)})()


def modal_backend(answer: Any, **options: Any) -> tuple[ModalBackend, Compare]:
    method = Compare(answer)
    handle = type("Handle", (), {"compare_speakers": method})()
    return ModalBackend(lookup=lambda: handle, retry_delay=0, **options), method


async def test_the_modal_backend_asks_the_app(echo_tts, verifier):
    def app(reference: bytes, sample: bytes) -> Any:
        return echo_tts.compare_speakers.local(reference, sample)

    backend, method = modal_backend(lambda r, s: app(r, s))
    same = await backend.speaker_similarity(clip("kal", "reference"), clip("kal", "consent"))
    other = await backend.speaker_similarity(clip("kal", "reference"), clip("slt", "consent"))
    assert same >= SAME_SPEAKER_THRESHOLD > other and len(method.calls) == 2
    assert same == pytest.approx(verifier.compare(clip("kal", "reference"), clip("kal", "consent")), abs=1e-6)


async def test_the_modal_backend_sends_only_what_the_encoder_reads():
    backend, method = modal_backend(lambda r, s: {"similarity": 0.5})
    long = np.full(round((MAX_COMPARED_SECONDS + 30) * 44_100), 0.1, np.float32)
    assert await backend.speaker_similarity(long, long[:44_100]) == 0.5
    reference, sample = method.calls[0]
    assert len(reference) == round(MAX_COMPARED_SECONDS * 44_100) * 4 and len(sample) == 44_100 * 4


@pytest.mark.parametrize(
    ("which", "error"), [("sample", TooLittleSpeech), ("reference", ReferenceTooLittleSpeech)]
)
async def test_the_modal_backend_says_which_recording_has_too_little_speech(which, error):
    reply = consent_check.reply_to_wire(consent_check.TooLittleSpeech(0.4, 1.0, which))
    backend, _ = modal_backend(lambda r, s: reply)
    with pytest.raises(error) as info:
        await backend.speaker_similarity(np.zeros(10), np.zeros(10))
    assert isinstance(info.value, InvalidInput) and "0.4 s" in info.value.message


async def test_the_modal_backend_maps_failures_as_for_every_method():
    no_method = mx.NotFoundError("Class has no method `compare_speakers` and attributes can't be accessed")
    backend, _ = modal_backend(lambda r, s: no_method)
    with pytest.raises(BackendOutdated, match="another version of this bot"):
        await backend.speaker_similarity(np.zeros(10), np.zeros(10))
    backend, _ = modal_backend(lambda r, s: {"score": 0.9})
    with pytest.raises(BackendFailed) as malformed:
        await backend.speaker_similarity(np.zeros(10), np.zeros(10))
    assert "compare_speakers replied" in malformed.value.detail
    backend, _ = modal_backend(lambda r, s: mx.TimeoutError("timed out"))
    with pytest.raises(BackendTimedOut):
        await backend.speaker_similarity(np.zeros(10), np.zeros(10))


# --- the local backend ------------------------------------------------------------------------------


async def test_the_local_backend_compares_speakers_beside_the_engine(tiny_engine):
    backend = LocalBackend(engine=tiny_engine)
    try:
        same = await backend.speaker_similarity(clip("rms", "reference"), clip("rms", "consent"))
        other = await backend.speaker_similarity(clip("rms", "reference"), clip("awb", "consent"))
        assert same >= SAME_SPEAKER_THRESHOLD > other
        assert backend.batches_run == 0  # the engine's GPU thread never saw it
    finally:
        await backend.close()


async def test_the_local_backend_checks_speakers_without_echos_weights(tmp_path):
    """The speaker encoder ships in its wheel: a consent check works before (or without) Echo's weights."""
    backend = LocalBackend(tmp_path / "no-weights")
    pairs = [(clip("slt", "reference"), clip("slt", "consent"))] * 3
    scores = await asyncio.gather(*(backend.speaker_similarity(r, s) for r, s in pairs))
    assert len(set(scores)) == 1 and scores[0] >= SAME_SPEAKER_THRESHOLD
    await backend.close()


async def test_the_local_backend_says_which_recording_has_too_little_speech(tiny_engine):
    backend = LocalBackend(engine=tiny_engine)
    with pytest.raises(TooLittleSpeech, match="voice message has too little speech"):
        await backend.speaker_similarity(clip("slt", "reference"), np.zeros(44_100, np.float32))
    with pytest.raises(ReferenceTooLittleSpeech, match="Clone it again"):
        await backend.speaker_similarity(np.zeros(44_100, np.float32), clip("slt", "consent"))
    await backend.close()
