"""Calibrate the consent check's speaker threshold: `python -m bench.speakers [--threshold 0.8] [--json]`.

Same-speaker and different-speaker pairs made offline, each clip through the consent path's codecs:

- voices: flite's slt, awb, rms and kal (each built from one real speaker's recordings) saying the ten
  sentences of `bench.speech_clips.calibration_set`;
- the reference (the cloned clip): sentences 1-5 of a voice joined (~10 s), kept as the bot keeps it
  (FLAC), or uploaded lossy first (Ogg/Opus 32 kbps, MP3 64 kbps) and then kept;
- the sample (the consent voice message): two of sentences 6-10 of a voice (~4 s, as long as the consent
  sentence), as a Discord voice message (Ogg/Opus 64 kbps, `voice_message`'s own) or a thriftier one
  (Ogg/Opus 32 kbps);
- same speaker: a voice's reference against its own samples;
- different speaker: a voice's reference against the other voices' samples, and, harder, against its own
  samples played faster or slower (±8-15 %, pitch and formants move together, as a shorter or longer vocal
  tract would). Those are a proxy for a similar-sounding other person, not a real one.

Prints a table, then one JSON object: score distributions, the equal error rate, and false-accept /
false-reject rates at the threshold (the calibrated default unless --threshold is given).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import av
import numpy as np

from bench.speech_clips import VOICES, calibration_set
from modal_tts.consent_check import SAME_SPEAKER_THRESHOLD
from modal_tts.output import encode
from modal_tts.output.voice_messages import voice_message

SAMPLE_RATE = 44_100
REFERENCE_SENTENCES = range(5)
SAMPLE_SENTENCES = ((5, 6), (6, 7), (7, 8), (8, 9), (9, 5))
SHIFTS = (0.85, 0.88, 0.92, 1.08, 1.12, 1.15)  # playback-speed factors of the proxy impostors
SWEEP = (0.75, 0.80, 0.85, 0.88, 0.90, 0.92)


@dataclass(frozen=True)
class Pair:
    reference: str  # voice/codec
    sample: str  # voice[/shift]/sentences/codec
    same: bool
    kind: str  # "same", "other voice", "shifted"
    score: float


def decode(data: bytes) -> np.ndarray:
    """A file as the bot reads it back: mono float32 at 44.1 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with av.open(io.BytesIO(data)) as container:
        frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    frames += resampler.resample(None)
    return np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float32)


REFERENCE_CODECS = {
    "flac": lambda pcm: encode(pcm, "flac"),
    "ogg32k": lambda pcm: encode(decode(encode(pcm, "ogg", bitrate=32_000)), "flac"),
    "mp3-64k": lambda pcm: encode(decode(encode(pcm, "mp3", bitrate=64_000)), "flac"),
}
SAMPLE_CODECS = {
    "voice-message-64k": lambda pcm: voice_message(pcm).data,
    "voice-message-32k": lambda pcm: encode(pcm, "ogg", bitrate=32_000),
}


def shifted(pcm: np.ndarray, factor: float) -> np.ndarray:
    """`pcm` played `factor` times as fast: pitch, formants and tempo all scaled by `factor`."""
    import torch
    import torchaudio

    faster = torchaudio.functional.resample(torch.from_numpy(pcm), round(100 * factor), 100)
    return faster.numpy().astype(np.float32)


def joined(clips: Sequence[np.ndarray], indices: Iterable[int]) -> np.ndarray:
    gap = np.zeros(SAMPLE_RATE // 4, np.float32)
    parts = [part for i in indices for part in (clips[i], gap)]
    return np.concatenate(parts[:-1])


def pairs(verifier: Any, speech: dict[str, list[np.ndarray]]) -> list[Pair]:
    """Every reference against every sample, each embedded once."""
    references = {
        f"{voice}/{codec}": verifier.embed(
            decode(make(joined(clips, REFERENCE_SENTENCES))), which="reference"
        )
        for voice, clips in speech.items()
        for codec, make in REFERENCE_CODECS.items()
    }
    samples: dict[str, tuple[str, float, np.ndarray]] = {}
    for voice, clips in speech.items():
        for (a, b), (codec, make) in itertools.product(SAMPLE_SENTENCES, SAMPLE_CODECS.items()):
            said = joined(clips, (a, b))
            for factor in (1.0, *SHIFTS):
                pcm = said if factor == 1.0 else shifted(said, factor)
                name = f"{voice}{'' if factor == 1.0 else f'x{factor}'}/s{a + 1}+s{b + 1}/{codec}"
                samples[name] = (voice, factor, verifier.embed(decode(make(pcm))))
    from modal_tts.speakers import similarity

    result = []
    for (ref_name, ref), (sample_name, (voice, factor, sample)) in itertools.product(
        references.items(), samples.items()
    ):
        ref_voice = ref_name.split("/")[0]
        if ref_voice != voice:
            kind = "other voice"
        else:
            kind = "same" if factor == 1.0 else "shifted"
        result.append(Pair(ref_name, sample_name, kind == "same", kind, similarity(ref, sample)))
    return result


def rates(same: Sequence[float], different: Sequence[float], threshold: float) -> dict[str, float]:
    """Accepted means score ≥ threshold."""
    return {
        "false_accept": sum(s >= threshold for s in different) / len(different),
        "false_reject": sum(s < threshold for s in same) / len(same),
    }


def equal_error_rate(same: Sequence[float], different: Sequence[float]) -> dict[str, float]:
    """Where false accepts and false rejects are closest, over every score as a threshold."""
    best = min(
        (max(r["false_accept"], r["false_reject"]), t, r)
        for t in sorted({*same, *different, 1.0})
        for r in [rates(same, different, t)]
    )
    eer, threshold, at = best
    return {"eer": eer, "threshold": threshold, **at}


def spread(scores: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(scores),
        "min": round(min(scores), 4),
        "median": round(statistics.median(scores), 4),
        "max": round(max(scores), 4),
    }


def report(found: Sequence[Pair], threshold: float) -> dict[str, Any]:
    same = [p.score for p in found if p.same]
    others = [p.score for p in found if p.kind == "other voice"]
    shifts = [p.score for p in found if p.kind == "shifted"]
    different = others + shifts
    by_shift = {
        str(factor): spread([p.score for p in found if p.kind == "shifted" and f"x{factor}/" in p.sample])
        for factor in SHIFTS
    }
    closest = max((p for p in found if not p.same), key=lambda p: p.score)
    weakest = min((p for p in found if p.same), key=lambda p: p.score)
    return {
        "voices": list(VOICES),
        "reference_codecs": list(REFERENCE_CODECS),
        "sample_codecs": list(SAMPLE_CODECS),
        "shifts": list(SHIFTS),
        "scores": {
            "same": spread(same),
            "different_other_voice": spread(others),
            "different_shifted": spread(shifts),
            "different_shifted_by_factor": by_shift,
        },
        "equal_error_rate": {
            "other_voices": _rounded(equal_error_rate(same, others)),
            "all_impostors": _rounded(equal_error_rate(same, different)),
        },
        "at_threshold": {
            "threshold": threshold,
            "other_voices": _rounded(rates(same, others, threshold)),
            "shifted": _rounded(rates(same, shifts, threshold)),
            "all_impostors": _rounded(rates(same, different, threshold)),
        },
        "sweep": {
            f"{t:.2f}": {
                "other_voices_false_accept": round(rates(same, others, t)["false_accept"], 4),
                "shifted_false_accept": round(rates(same, shifts, t)["false_accept"], 4),
                "false_reject": round(rates(same, others, t)["false_reject"], 4),
            }
            for t in SWEEP
        },
        "highest_impostor": asdict(closest),
        "lowest_same": asdict(weakest),
    }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in values.items()}


def table(result: dict[str, Any]) -> str:
    scores, eer, at = result["scores"], result["equal_error_rate"], result["at_threshold"]
    rows = [
        ("same speaker", scores["same"]),
        ("other voice", scores["different_other_voice"]),
        ("shifted (proxy)", scores["different_shifted"]),
        *((f"  shifted x{f}", s) for f, s in scores["different_shifted_by_factor"].items()),
    ]
    lines = [f"{'pairs':<18}{'n':>6}{'min':>8}{'median':>8}{'max':>8}"]
    lines += [f"{name:<18}{s['n']:>6}{s['min']:>8.3f}{s['median']:>8.3f}{s['max']:>8.3f}" for name, s in rows]
    lines.append("")
    for name, values in eer.items():
        lines.append(f"EER ({name.replace('_', ' ')}): {values['eer']:.1%} at {values['threshold']:.3f}")
    lines.append(f"At threshold {at['threshold']:.2f}:")
    for name in ("other_voices", "shifted", "all_impostors"):
        r = at[name]
        lines.append(
            f"  {name.replace('_', ' '):<14} false accepts {r['false_accept']:.1%}, "
            f"false rejects {r['false_reject']:.1%}"
        )
    lines.append(f"{'threshold':<11}{'FA other':>10}{'FA shifted':>12}{'FR':>8}")
    for t, r in result["sweep"].items():
        lines.append(
            f"{t:<11}{r['other_voices_false_accept']:>10.1%}{r['shifted_false_accept']:>12.1%}"
            f"{r['false_reject']:>8.1%}"
        )
    high, low = result["highest_impostor"], result["lowest_same"]
    lines.append(f"Highest impostor: {high['score']:.3f} ({high['sample']} vs {high['reference']})")
    lines.append(f"Lowest same:      {low['score']:.3f} ({low['sample']} vs {low['reference']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=SAME_SPEAKER_THRESHOLD)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    from modal_tts.speakers import SpeakerVerifier

    result = report(pairs(SpeakerVerifier(), calibration_set()), args.threshold)
    if not args.json:
        print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
