"""A made-up recording to try the bot with: `python -m bot.audio.sample OUT [--seconds S]`.

A voice-like signal (a gliding harmonic tone in ~4 Hz syllables with short gaps and a faint room noise)
that passes every check a real upload must pass, so `voicebot clone` can be tried without a microphone
or anyone's voice. The tests use the same signal. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from modal_tts.output import encode

SAMPLE_RATE = 44100
FORMATS_BY_SUFFIX = {".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3", ".wav": "wav", ".flac": "flac"}


def speech_like(
    seconds: float,
    *,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
    peak: float = 0.5,
    f0: float = 140.0,
    noise_dbfs: float = -60.0,
) -> np.ndarray:
    """A voice-ish signal: a gliding harmonic tone, shaped into ~4 Hz syllables with short gaps.

    Returns float32 mono with the given peak; between syllables only the noise floor remains.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.6 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 11))

    # syllables: raised-cosine bumps of random length, one in five replaced by a pause
    envelope = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.15, 0.32) * sample_rate)
        if rng.random() > 0.2:
            bump = np.sin(np.linspace(0, np.pi, length)) ** 2
            envelope[pos : pos + length] = bump[: n - pos]
        pos += length
    signal = voice * envelope
    signal += 0.05 * rng.standard_normal(n) * envelope  # breathiness follows the voice
    scale = peak / max(float(np.max(np.abs(signal))), 1e-9)
    signal *= scale
    signal += rng.standard_normal(n) * 10 ** (noise_dbfs / 20)  # room noise, always there
    return signal.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.audio.sample", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="where to write it: .ogg, .mp3, .wav or .flac")
    parser.add_argument("--seconds", type=float, default=12.0, help="its length (default 12; 5 to 300)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same recording (default 0)")
    args = parser.parse_args(argv)
    fmt = FORMATS_BY_SUFFIX.get(args.out.suffix.lower())
    if fmt is None:
        parser.error(f"{args.out}: end the name in {', '.join(FORMATS_BY_SUFFIX)}")
    if not 5 <= args.seconds <= 300:
        parser.error("--seconds must be between 5 and 300 (the clip limits of `voicebot clone`)")
    pcm = speech_like(args.seconds, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(encode(pcm, fmt, sample_rate=SAMPLE_RATE))
    print(f"Wrote a {args.seconds:g} s made-up voice-like recording to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
