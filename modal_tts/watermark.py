"""An inaudible watermark on every output, and the check for it: Resemble's Perth (PerthNet, MIT, weights in
the `resemble-perth` wheel).

PerthNet works on 32 kHz audio (STFT n_fft 2048, hop 320) and writes its mark into the magnitudes below
2 kHz. Perth's own `apply_watermark` sends the whole signal through 32 kHz and back, which would cut Echo's
44.1 kHz output at 16 kHz; here only the mark makes that trip: the encoder's change to the spectrum is
turned into a signal of its own (the iSTFT is linear; taken at 8 kHz, see `_SYNTH_FACTOR`) and added,
resampled, to the untouched original. Resampling is torchaudio's on the engine's device (librosa's first
call costs seconds).

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


# The mark's change to the spectrum lies wholly below 2 kHz (PerthNet's subband), so its iSTFT is taken at
# a quarter of PerthNet's rate: the 2048-point inverse FFT of bins under 2 kHz, read at every 4th sample,
# is the 512-point inverse FFT over 4; hann(2048) at every 4th point is hann(512), the hop is 80. So this
# is the 32 kHz iSTFT's every 4th sample, and it goes straight to 44.1 kHz (8 kHz holds 2 kHz with room
# for the resampler's roll-off). It differs from the 32 kHz path by 0.05 % of the mark, and costs a
# quarter of its inverse FFTs and a third of its resampling.
_SYNTH_FACTOR = 4

_FADE_IN = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, FADE_SAMPLES))).astype(np.float32)
# How Perth scales its dB magnitudes for the network (its `normalize`): 0 at the floor, 1 at +15 dB.
_FLOOR_DB_HEADROOM = 15.0


_PRIVATE = "modal_tts._perth_implicit"  # the package name PerthNet's model files are imported under


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


class _OneDnnConv1d(torch.nn.Conv1d):
    """A Conv1d that runs through oneDNN on the CPU whatever `torch.backends.mkldnn.enabled` says. The
    engine turns that flag off on the CPU (oneDNN plans a kernel per input length, seconds per DAC
    decode), but PerthNet's fixed-width convolutions plan in no time and run twice as fast with it; the
    flag is process-wide, so these convolutions ask for oneDNN themselves instead of turning it back on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        usable = x.device.type == "cpu" and x.dtype == torch.float32
        if usable and isinstance(self.padding, tuple) and torch.backends.mkldnn.is_available():
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


class _Resample(Resample):
    """torchaudio's Resample with its one convolution through oneDNN on the CPU, as `_OneDnnConv1d` (its
    ATen fallback is a slow conv2d: a third of marking's time without this)."""

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        usable = waveform.device.type == "cpu" and waveform.dtype == torch.float32 and waveform.dim() == 1
        if self.orig_freq == self.new_freq or not (usable and torch.backends.mkldnn.is_available()):
            return super().forward(waveform)
        # torchaudio's `_apply_sinc_resample_kernel` for one signal: each output phase is a strided
        # convolution with its own kernel row, interleaved.
        step, rate = self.orig_freq // self.gcd, self.new_freq // self.gcd
        padded = torch.nn.functional.pad(waveform[None, None], (self.width, self.width + step))
        phases = torch.mkldnn_convolution(padded, self.kernel, None, [0], [step], [1], 1)[0]
        return phases.transpose(0, 1).reshape(-1)[: -(-rate * waveform.numel() // step)]


class _PerthNet(torch.nn.Module):
    """PerthNet's two networks with the wheel's weights, on the CPU, in eval mode: the encoder writes the
    mark into a magnitude spectrogram, the decoder reads it back (the training-time audio processor is
    not needed)."""

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
        for module in self.modules():
            if type(module) is torch.nn.Conv1d and module.padding_mode == "zeros":
                module.__class__ = _OneDnnConv1d  # same parameters, oneDNN's kernel
        self.eval()


class Watermarker:
    """PerthNet on one device: `mark` float32 mono 44.1 kHz audio, read a clip's `confidence`."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.net = _PerthNet()
        self.hp = self.net.hp
        # Perth's `normalize`: dB from its magnitude floor (0) to +15 dB (1).
        self.floor_db = float(20 * np.log10(self.hp.stft_magnitude_min))
        self.db_span = -self.floor_db + _FLOOR_DB_HEADROOM
        # The STFT bins below Perth's highest watermark frequency: the only ones the encoder changes.
        self.subband = self.net.encoder.subband
        self.to(device)

    def to(self, device: str | torch.device) -> Watermarker:
        """Move to `device` (as the engine moves) and warm up there."""
        self.device = torch.device(device)
        self.net = self.net.to(self.device)
        hp, factor = self.hp, _SYNTH_FACTOR
        self.down = _Resample(SAMPLE_RATE, hp.sample_rate).to(self.device)
        self.up = _Resample(hp.sample_rate // factor, SAMPLE_RATE).to(self.device)
        self.readers: dict[int, Resample] = {}
        self.window = torch.hann_window(hp.window_size, device=self.device)
        self.synth_window = torch.hann_window(hp.window_size // factor, device=self.device)
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
        mag = self._normalised(spectrum)
        marked, _ = self.net.encoder(mag[None])  # its mask is decided on the whole spectrum
        # Perth rebuilds the marked spectrum from the marked magnitudes and the original phase; the
        # change is that spectrum less the original, i.e. the original times (the encoder's dB change
        # as a gain, minus one).
        gain_db = (marked[0, : self.subband] - mag[: self.subband]) * self.db_span
        factor = _SYNTH_FACTOR
        change = spectrum.new_zeros(hp.n_fft // factor // 2 + 1, spectrum.shape[1])
        change[: self.subband] = spectrum[: self.subband] * torch.expm1(gain_db * (np.log(10.0) / 20))
        window = self.synth_window
        length = -(-x32.numel() // factor)
        delta_low = torch.istft(
            change, window.numel(), hp.hop_size // factor, window.numel(), window, center=True, length=length
        )
        delta = (self.up(delta_low)[lead : lead + piece.size] / factor).float().cpu().numpy()
        fade = min(FADE_SAMPLES, delta.size)
        delta[delta.size - fade :] *= _FADE_IN[:fade][::-1]
        if heard:
            delta[:fade] *= _FADE_IN[:fade]
        piece[: delta.size] += delta
        return piece

    @torch.inference_mode()
    def spectrogram(self, audio: np.ndarray) -> torch.Tensor:
        """Float32 mono 44.1 kHz audio as PerthNet's encoder and decoder read it: normalised dB
        magnitudes, [bins, frames] (the benchmark times the encoder alone on these)."""
        signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32).reshape(-1))
        return self._normalised(self._stft(self.down(signal.to(self.device))))

    def _normalised(self, spectrum: torch.Tensor) -> torch.Tensor:
        """A spectrum's magnitudes as PerthNet reads them: dB, scaled as Perth's `normalize` does. Taken
        from the power (complex `abs` spends three times as long on its square roots)."""
        parts = torch.view_as_real(spectrum)
        power = torch.addcmul(parts[..., 0] * parts[..., 0], parts[..., 1], parts[..., 1])
        span = self.db_span
        return power.clip_(self.hp.stft_magnitude_min**2).log10_().mul_(10 / span).sub_(self.floor_db / span)

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
            reader = self.readers[sample_rate] = _Resample(sample_rate, self.hp.sample_rate).to(self.device)
        x32 = reader(torch.from_numpy(np.ascontiguousarray(audio)).to(self.device))
        mag = self._normalised(self._stft(x32))
        score = float(self.net.decoder(mag[None])[0].clip(0.0, 1.0))
        return score if np.isfinite(score) else 0.0
