"""Time the engine: `python -m modal_tts.bench [--weights DIR | --full-size-random] [--device cuda]`.

Prints one JSON object: real-time factor, seconds per chunk, and batch-1 against batch-N throughput.
Without options it builds the tiny model in a temporary directory and runs on the CPU (a smoke test of
the timing path, not a speed figure). `--full-size-random` builds EchoDiT and the DAC at the official
sizes with random weights: the same FLOPs and memory traffic as the real checkpoint, with no download.
Random weights never "finish speaking", so every chunk decodes the whole sequence: a worst case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modal_tts.engine import OFFICIAL_ECHO_CONFIG, EchoEngine, Row, _drop_blockwise, build_dac
from modal_tts.params import SAMPLE_RATE, SynthesisParams, chunk_seed

# About 25 s of speech each: the length `bot.text` aims its chunks at.
CHUNK_TEXT = (
    "[S1] The lighthouse keeper climbed the spiral stairs every evening, counting each step out loud, "
    "because his father had done the same and because the sea, he said, liked to hear a voice. "
    "Tonight the fog rolled in early, thick as wool, and the lamp turned slowly above the rocks, "
    "sweeping a pale arm across the water for anyone still out there."
)


def full_size_random_engine(device: str, dtype: torch.dtype | None) -> EchoEngine:
    from echo_tts.inference import PCAState
    from echo_tts.model import EchoDiT

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the target device: seconds on a GPU, not minutes
        model = EchoDiT(**OFFICIAL_ECHO_CONFIG).eval()
        _drop_blockwise(model)
        fish_ae = build_dac(None).eval()
        components, _ = torch.linalg.qr(torch.randn(fish_ae.latent_dim, 80))
        pca = PCAState(components.T.contiguous(), torch.zeros(fish_ae.latent_dim), 1.0)
    engine = EchoEngine(model, fish_ae, pca, "random-full-size", {"echo": OFFICIAL_ECHO_CONFIG})
    return engine.to(device, dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(engine: EchoEngine, fn: Callable[[], Any]) -> tuple[float, Any]:
    _sync(engine.device)
    started = time.perf_counter()
    result = fn()
    _sync(engine.device)
    return time.perf_counter() - started, result


def run(engine: EchoEngine, params: SynthesisParams, batch: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    reference = (rng.standard_normal(10 * SAMPLE_RATE) * 0.1).astype(np.float32)
    engine.encode_speaker(reference)  # warm-up: kernels, allocator
    encode_s, latent = _timed(engine, lambda: engine.encode_speaker(reference))

    def speak(n: int) -> tuple[float, float, float]:
        rows = [Row(CHUNK_TEXT, latent, chunk_seed(1, i)) for i in range(n)]
        _sync(engine.device)
        started = time.perf_counter()
        first = None
        audio_s = 0.0
        for _, audio in engine.synthesize_rows(rows, params):
            _sync(engine.device)
            first = first or time.perf_counter() - started
            audio_s += audio.size / SAMPLE_RATE
        _sync(engine.device)
        return time.perf_counter() - started, first or 0.0, audio_s

    speak(1)  # warm-up for batch 1 shapes
    single = [speak(1) for _ in range(repeats)]
    speak(batch)
    multi = [speak(batch) for _ in range(repeats)]
    s1 = statistics.median(r[0] for r in single)
    sn = statistics.median(r[0] for r in multi)
    audio1 = single[0][2]
    audion = multi[0][2]
    return {
        "device": str(engine.device),
        "device_name": engine.info()["device_name"],
        "dtype": str(engine.model.dtype).removeprefix("torch."),
        "model": engine.revision,
        "steps": params.steps,
        "sequence_length": params.sequence_length,
        "encode_10s_reference_s": round(encode_s, 4),
        "batch_1": {
            "seconds": round(s1, 4),
            "audio_seconds": round(audio1, 2),
            "real_time_factor": round(s1 / audio1, 5),
            "first_chunk_s": round(statistics.median(r[1] for r in single), 4),
        },
        f"batch_{batch}": {
            "seconds": round(sn, 4),
            "audio_seconds": round(audion, 2),
            "real_time_factor": round(sn / audion, 5),
            "seconds_per_chunk": round(sn / batch, 4),
            "first_chunk_s": round(statistics.median(r[1] for r in multi), 4),
        },
        "batch_speedup": round((audion / sn) / (audio1 / s1), 2),
        "repeats": repeats,
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modal_tts.bench", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="weights directory (default: a fresh tiny model)")
    source.add_argument(
        "--full-size-random",
        action="store_true",
        help="official sizes, random weights (needs a GPU to finish in reasonable time)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--sequence-length", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8, help="N for the batch-N measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    params = SynthesisParams(steps=args.steps, sequence_length=args.sequence_length)
    if args.full_size_random:
        engine = full_size_random_engine(args.device, None)
    elif args.weights:
        engine = EchoEngine.from_dir(args.weights, device=args.device)
    else:
        from modal_tts.tiny import write_tiny_model

        with tempfile.TemporaryDirectory() as tmp:
            engine = EchoEngine.from_dir(write_tiny_model(tmp), device=args.device)
    print(json.dumps(run(engine, params, args.batch, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
