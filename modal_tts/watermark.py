"""An inaudible watermark on every output, and the check for it: Resemble's Perth (PerthNet, MIT, weights in
the `resemble-perth` wheel).

PerthNet works on 32 kHz audio (STFT n_fft 2048, hop 320) and writes its mark into the magnitudes below
2 kHz. Perth's own `apply_watermark` sends the whole signal through 32 kHz and back, which would cut Echo's
44.1 kHz output at 16 kHz; here only the mark makes that trip: the encoder's change to the spectrum is
turned into a signal of its own at 32 kHz (the iSTFT is linear) and added, resampled, to the untouched
original. Resampling is torchaudio's on the engine's device (librosa's first call costs seconds).

`Watermarker.mark` for output, `Watermarker.confidence` for a clip (the decoder's unrounded score, 0..1;
marked speech scores about 1, clean audio about 0). Perth's mark is one mark, the same for everyone who
uses Perth (Resemble's Chatterbox too): it says "made by a Perth-watermarking AI voice", not by whom.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torchaudio.transforms import Resample

SAMPLE_RATE = 44_100
THRESHOLD = 0.5  # confidence at or above which a clip carries the mark
# Under this many samples a clip holds too few STFT frames to mark or read (the decoder's slowest branch
# needs a handful); marked clips under ~1 s read unreliably anyway.
MIN_SAMPLES = SAMPLE_RATE // 4
# How much already handed-over audio a piece is marked with (`mark(..., heard=)`): the encoder sees
# about 0.3 s either side of a frame, so the mark at a piece's start is the mark of the whole chunk.
CONTEXT_SAMPLES = SAMPLE_RATE // 2
# The mark fades out over a piece's last 20 ms and in over the first 20 ms after a join: a piece's end is
# marked without the audio after it, and a mark that stopped short there would step at the join.
FADE_SAMPLES = SAMPLE_RATE // 50


_FADE_IN = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, FADE_SAMPLES))).astype(np.float32)
# How Perth scales its dB magnitudes for the network (its `normalize`): 0 at the floor, 1 at +15 dB.
_FLOOR_DB_HEADROOM = 15.0


def _perth_modules() -> dict[str, Any]:
    """PerthNet's config, encoder and decoder modules, imported from the wheel without running the
    `perth` package's own imports: those pull in librosa, numba, scipy.signal and pkg_resources (about
    5 s in every process that loads an engine, the CLI's included) for a resampler and filters this
    module never uses. The model files are imported under a private package name, so a real `import
    perth` elsewhere is untouched."""
    spec = importlib.util.find_spec("perth")  # finds the wheel without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'perth'", name="perth")
    folder = Path(next(iter(spec.submodule_search_locations))) / "perth_net" / "perth_net_implicit"
    if _PRIVATE not in sys.modules:
        package = types.ModuleType(_PRIVATE)
        package.__path__ = [str(folder)]
        sys.modules[_PRIVATE] = package
    names = ("config", "model", "model.encoder", "model.decoder")
    modules = {name: importlib.import_module(f"{_PRIVATE}.{name}") for name in names}
    return {"folder": folder, **modules}


_PRIVATE = "modal_tts._perth_implicit"


class _PerthNet(torch.nn.Module):
    """PerthNet's two networks: the encoder writes the mark into a magnitude spectrogram, the decoder
    reads it back (the training-time audio processor is not needed)."""

    def __init__(self) -> None:
        super().__init__()
        found = _perth_modules()
        weights = found["folder"].parent / "pretrained" / "implicit"
        self.hp = found["config"].PerthConfig(**yaml.safe_load((weights / "hparams.yaml").read_text()))
        subband = found["model"].compute_subband_freq(self.hp)
        self.encoder = found["model.encoder"].Encoder(self.hp.hidden_size, subband)
        self.decoder = found["model.decoder"].Decoder(self.hp.hidden_size, subband)
        state = torch.load(weights / "perth_net_250000.pth.tar", map_location="cpu", weights_only=True)[
            "model"
        ]
        for part in ("encoder", "decoder"):
            prefix = f"{part}."
            getattr(self, part).load_state_dict(
                {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
            )
        self.eval()


def _perth_net() -> _PerthNet:
    """PerthNet with the wheel's weights, on the CPU, in eval mode."""
    return _PerthNet()


def normalize(hp: Any, magnitude_db: torch.Tensor) -> torch.Tensor:
    """dB magnitudes as PerthNet reads them."""
    floor_db = 20 * np.log10(hp.stft_magnitude_min)
    return (magnitude_db - floor_db) / (-floor_db + _FLOOR_DB_HEADROOM)


def magphase_to_cx(hp: Any, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """A spectrum from PerthNet's normalised magnitudes and a phase."""
    floor_db = 20 * np.log10(hp.stft_magnitude_min)
    magnitude_db = magnitude * (-floor_db + _FLOOR_DB_HEADROOM) + floor_db
    return 10.0 ** ((magnitude_db / 20).clip(max=10)) * torch.exp(1.0j * phase)


class Watermarker:
    """PerthNet on one device: `mark` float32 mono 44.1 kHz audio, read a clip's `confidence`."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.net = _perth_net()
        self.hp = self.net.hp
        # The STFT bins below Perth's highest watermark frequency: the only ones the encoder changes.
        self.subband = self.net.encoder.subband
        self.to(device)

    def to(self, device: str | torch.device) -> Watermarker:
        """Move to `device` (as the engine moves) and warm up there."""
        self.device = torch.device(device)
        self.net = self.net.to(self.device)
        self.down = Resample(SAMPLE_RATE, self.hp.sample_rate).to(self.device)
        self.up = Resample(self.hp.sample_rate, SAMPLE_RATE).to(self.device)
        self.readers: dict[int, Resample] = {}
        self.window = torch.hann_window(self.hp.window_size, device=self.device)
        self.warm_up()
        return self

    def warm_up(self) -> None:
        """One mark and one read of a second of noise, so the first real request pays no set-up."""
        noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
        self.confidence(self.mark(noise))

    def _stft(self, signal: torch.Tensor) -> torch.Tensor:
        hp = self.hp
        return torch.stft(
            signal,
            hp.n_fft,
            hp.hop_size,
            hp.window_size,
            self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )

    @torch.inference_mode()
    def mark(self, audio: np.ndarray, heard: int = 0) -> np.ndarray:
        """`audio[heard:]` (float32 mono 44.1 kHz) with the watermark added: same length, nothing above
        2 kHz changed. The `heard` samples before it were handed over (marked) already: up to
        `CONTEXT_SAMPLES` of them are read, so the mark runs on across the join, but none is returned."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        heard = min(max(heard, 0), audio.size)
        piece = audio[heard:].copy()
        lead = min(heard, CONTEXT_SAMPLES)
        seen = audio[heard - lead :]
        if seen.size < MIN_SAMPLES or not np.isfinite(seen).all():
            return piece
        hp = self.hp
        x32 = self.down(torch.from_numpy(np.ascontiguousarray(seen)).to(self.device))
        spectrum = self._stft(x32)
        mag = self._normalised(spectrum.abs())
        marked, _ = self.net.encoder(mag[None])  # its mask is decided on the whole spectrum
        phase = torch.angle(spectrum[: self.subband])
        change = torch.zeros_like(spectrum)
        change[: self.subband] = magphase_to_cx(hp, marked[0, : self.subband], phase) - magphase_to_cx(
            hp, mag[: self.subband], phase
        )
        delta32 = torch.istft(
            change, hp.n_fft, hp.hop_size, hp.window_size, self.window, center=True, length=x32.numel()
        )
        delta = self.up(delta32)[lead : lead + piece.size].float().cpu().numpy()
        fade = min(FADE_SAMPLES, delta.size)
        delta[delta.size - fade :] *= _FADE_IN[:fade][::-1]
        if heard:
            delta[:fade] *= _FADE_IN[:fade]
        piece[: delta.size] += delta
        return piece

    def _normalised(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Magnitudes as PerthNet reads them: dB, scaled by Perth's `normalize`."""
        hp = self.hp
        return normalize(hp, 20 * torch.log10(magnitude.clip(hp.stft_magnitude_min)))

    @torch.inference_mode()
    def confidence(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
        """How surely `audio` (float32 mono) carries the watermark, 0..1 (`THRESHOLD` decides); 0.0 for
        audio too short or too quiet to hold it."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size * SAMPLE_RATE < MIN_SAMPLES * sample_rate or not np.isfinite(audio).all():
            return 0.0
        if not np.any(audio):
            return 0.0
        reader = self.readers.get(sample_rate)
        if reader is None:
            reader = self.readers[sample_rate] = Resample(sample_rate, self.hp.sample_rate).to(self.device)
        x32 = reader(torch.from_numpy(np.ascontiguousarray(audio)).to(self.device))
        mag = self._normalised(self._stft(x32).abs())
        score = float(self.net.decoder(mag[None])[0].clip(0.0, 1.0))
        return score if np.isfinite(score) else 0.0
