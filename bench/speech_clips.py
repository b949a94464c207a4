"""Make the spoken test clips in tests/speech/ with flite (Debian package `flite`), the only speech that
can be made offline here: four of flite's voices, each built from one real speaker's recordings (CMU
ARCTIC's slt, awb and rms, and the diphone voice kal), so "same speaker" and "different speaker" pairs
are honest pairs of one person and of two people.

    apt-get install flite && python -m bench.speech_clips tests/speech

Each voice says a reference (≥ 5 s, what /clone takes) and a consent sentence (what a voice message
says); clips are Ogg/Opus at 32 kbps mono, a few KB a second, so they can be kept in the repository.
`calibration_set` makes more sentences per voice for the speaker-verification calibration
(bench/speakers.py).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import wave
from pathlib import Path

import av
import numpy as np

from bot.audio import SAMPLE_RATE, encode

VOICES = ("slt", "awb", "rms", "kal")
REFERENCE = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)
CONSENT = "I agree that Echo Voice Bot may speak in my voice on the Test Server."
SENTENCES = (
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
)


def speak(voice: str, text: str) -> np.ndarray:
    """`text` in flite's `voice`, as mono float32 at 44.1 kHz."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
        with wave.open(str(path)) as clip:
            rate = clip.getframerate()
            pcm = np.frombuffer(clip.readframes(clip.getnframes()), np.int16).astype(np.float32) / 32768
    return _to_44k(pcm, rate)


def _to_44k(pcm: np.ndarray, rate: int) -> np.ndarray:
    frame = av.AudioFrame.from_ndarray(pcm[None], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float32)


def write_clips(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for voice in VOICES:
        for kind, text in (("reference", REFERENCE), ("consent", CONSENT)):
            path = folder / f"{voice}-{kind}.ogg"
            path.write_bytes(encode(speak(voice, text), "ogg", bitrate=32000))
            written.append(path)
    return written


def calibration_set(voices: tuple[str, ...] = VOICES) -> dict[str, list[np.ndarray]]:
    """Each voice saying every sentence of SENTENCES: the same-speaker and different-speaker pairs."""
    return {voice: [speak(voice, text) for text in SENTENCES] for voice in voices}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    for path in write_clips(parser.parse_args(argv).folder):
        print(f"{path} {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
