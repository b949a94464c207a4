"""Who is speaking: Resemblyzer's GE2E speaker encoder (weights in its wheel) turns an utterance into a
256-d unit vector; two recordings of one person point the same way, so their cosine is the score the
consent check compares with its threshold (`modal_tts.consent_check`, calibrated by bench/speakers.py).

The encoder's own preprocessing runs as Resemblyzer does it (volume up to -30 dBFS, long silences cut by
webrtcvad, 40-band mel frames, 1.6 s partials averaged), except the resampling: torchaudio's here, because
librosa's first call of its resampler costs seconds.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torchaudio

from modal_tts.consent_check import MAX_COMPARED_SECONDS, MIN_VOICED_SECONDS, TooLittleSpeech, Which

ENCODER_RATE = 16_000  # Resemblyzer's hparams.sampling_rate
_QUIET = 10 ** (-70 / 20)  # a peak below -70 dBFS holds no speech (and volume-normalising it divides by ~0)

with warnings.catch_warnings():
    # resemblyzer 0.1.4 imports scipy.ndimage.morphology, deprecated since SciPy 1.8: its only warning.
    warnings.simplefilter("ignore", DeprecationWarning)
    from resemblyzer import VoiceEncoder
    from resemblyzer import audio as resemblyzer_audio
    from resemblyzer.hparams import audio_norm_target_dBFS


class SpeakerVerifier:
    """The encoder, loaded once and warmed up (the first call imports librosa's spectral code, seconds on
    a slow disk); `embed` and `compare` are safe to call from several threads at once (a VAD of their
    own per call; the LSTM's weights are only read)."""

    def __init__(self) -> None:
        # CPU even where a GPU is: a 3-layer LSTM over a few seconds of mel frames takes ~0.1 s on a core,
        # and on the GPU it would queue behind the sampler on the one GPU thread for no gain.
        self.encoder = VoiceEncoder("cpu", verbose=False).eval()
        # Every stage once, straight through (whatever the VAD makes of a synthetic buzz).
        buzz = _warmup_buzz()
        _voiced(_to_encoder_rate(buzz, 44_100))
        with torch.inference_mode():
            self.encoder.embed_utterance(_to_encoder_rate(buzz, 44_100))

    def embed(self, pcm: np.ndarray, sample_rate: int = 44_100, *, which: Which = "sample") -> np.ndarray:
        """The utterance embedding of mono `pcm` (float32, 256-d, unit length) from its first
        MAX_COMPARED_SECONDS; TooLittleSpeech if under MIN_VOICED_SECONDS are left once silences are cut."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)[: round(MAX_COMPARED_SECONDS * sample_rate)]
        pcm = np.nan_to_num(pcm, nan=0.0, posinf=0.0, neginf=0.0)
        if pcm.size == 0 or float(np.max(np.abs(pcm))) < _QUIET:
            raise TooLittleSpeech(0.0, which=which)
        wav = _to_encoder_rate(pcm, sample_rate)
        voiced = _voiced(wav)
        seconds = voiced.size / ENCODER_RATE
        if seconds < MIN_VOICED_SECONDS:
            raise TooLittleSpeech(seconds, which=which)
        with torch.inference_mode():
            embedding = self.encoder.embed_utterance(voiced)
        return np.asarray(embedding, dtype=np.float32)

    def compare(self, reference: np.ndarray, sample: np.ndarray, sample_rate: int = 44_100) -> float:
        """How alike the speakers of two recordings sound: the cosine of their embeddings."""
        return similarity(
            self.embed(reference, sample_rate, which="reference"),
            self.embed(sample, sample_rate, which="sample"),
        )


def similarity(reference: np.ndarray, sample: np.ndarray) -> float:
    """Cosine of two utterance embeddings (Resemblyzer's are non-negative, so in [0, 1])."""
    a = np.asarray(reference, dtype=np.float64).reshape(-1)
    b = np.asarray(sample, dtype=np.float64).reshape(-1)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if a.shape != b.shape or norms == 0.0:
        raise ValueError(f"embeddings of shapes {a.shape} and {b.shape} can't be compared")
    return float(np.clip(np.dot(a, b) / norms, -1.0, 1.0))


def _to_encoder_rate(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == ENCODER_RATE:
        return pcm
    resampled = torchaudio.functional.resample(torch.from_numpy(pcm), sample_rate, ENCODER_RATE)
    return resampled.numpy().astype(np.float32, copy=False)


def _voiced(wav: np.ndarray) -> np.ndarray:
    """Resemblyzer's `preprocess_wav` on 16 kHz audio, clipped in between: volume raised to -30 dBFS can
    push a quiet clip's peaks past full scale, which its VAD's int16 conversion would wrap around."""
    wav = resemblyzer_audio.normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
    return np.asarray(resemblyzer_audio.trim_long_silences(np.clip(wav, -1.0, 1.0)), dtype=np.float32)


def _warmup_buzz() -> np.ndarray:
    """2 s of a 120 Hz buzz at 44.1 kHz, loudness wavering at 4 Hz like syllables."""
    t = np.arange(2 * 44_100) / 44_100
    buzz = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 30))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.1 * envelope * buzz / 3).astype(np.float32)
