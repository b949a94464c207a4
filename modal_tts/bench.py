"""Time the engine and its scheduler: `python -m modal_tts.bench [--gpu] [--weights DIR]`.

Without options: the tiny random-weight model on the CPU, through the same scheduler the bot's local
backend and the Modal class use, with default settings. Prints one JSON object:
- `short_vs_full`: "Hello." (a window sized to it) against one full-window chunk: audio length and cost;
- `first_chunk`: a 4-chunk request's time to its first chunk ÷ a 1-chunk request's total time;
- `concurrent`: forward passes for 8 concurrent one-chunk requests ÷ for one;
- `blocks`: time to first audio with the low-latency plan ÷ the same text's whole-plan time
  (`first_audio_ratio`), for a full-window chunk and a sentence; and the compute (forward passes and
  seconds) of a short text with early stop ÷ the same plan sampled to its end. Random weights never reach
  Echo's end of speech, so for early stop the latents are made flat after the text's estimated speech
  (`EndsSpeech`): what a real model does, at a known place.
These are smoke figures on a CPU, not speed: they show the scheduling works as designed.

`--gpu`: the one-shot GPU suite (≤ 7 minutes on an H100/H200), on the official sizes with random weights
(`--full-size-random` is implied unless `--weights` is given): the same FLOPs as the real checkpoint, no
download. Prints JSON lines: device and versions; forward-pass time per (window, batch), eager and fast
path; time to first audio and real-time factor for one short request, one full-window request and 8
concurrent full-window requests; the low-latency plan's first-block latency at batch 1, 4 and 8 and its
real-time factor; decode time; watermark mark/check time per 20 s; peak memory; GPU-seconds and cost per
20 s `/say`.
Random weights never reach Echo's end of speech, so every chunk decodes its whole window: a worst case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

import numpy as np

from modal_tts import plans, windows
from modal_tts.params import SAMPLE_RATE, SynthesisParams
from modal_tts.prerequisites import engine_imports
from modal_tts.windows import BUCKETS, window_for

with engine_imports("python -m modal_tts.bench"):
    import torch

    from modal_tts.engine import OFFICIAL_ECHO_CONFIG, EchoEngine, Row, build_dac, fold_weight_norm
    from modal_tts.fastpath import BATCH_SIZES
    from modal_tts.scheduler import Scheduler, run_inline

HELLO = "[S1] Hello."
FIRST_SENTENCE = "[S1] Here is the news for this evening."
# About 25 s of speech: the longest chunk `bot.text` makes, sampled in the full window.
LONG_CHUNK = (
    "[S1] The lighthouse keeper climbed the spiral stairs every evening, counting each step out loud, "
    "because his father had done the same and because the sea, he said, liked to hear a voice. "
    "Tonight the fog rolled in early, thick as wool, and the lamp turned slowly above the rocks."
)
# Modal's listed H100 price, per second (≈ $3.95 an hour); pass --price-per-second for another GPU.
H100_PRICE_PER_SECOND = 0.001097


def full_size_random_engine(device: str, dtype: torch.dtype | None = None) -> EchoEngine:
    from echo_tts.inference import PCAState
    from echo_tts.model import EchoDiT

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the target device: seconds on a GPU, not minutes
        model = EchoDiT(**OFFICIAL_ECHO_CONFIG).eval()  # with the blockwise modules, as released
        fish_ae = build_dac(None).eval()
        fold_weight_norm(fish_ae)
        components, _ = torch.linalg.qr(torch.randn(fish_ae.latent_dim, 80))
        pca = PCAState(components.T.contiguous(), torch.zeros(fish_ae.latent_dim), 1.0)
    engine = EchoEngine(model, fish_ae, pca, "random-full-size", {"echo": OFFICIAL_ECHO_CONFIG})
    return engine.to(device, dtype)


def _sync(engine: EchoEngine) -> None:
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def _median_seconds(engine: EchoEngine, fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: kernels, allocator, graphs
    times = []
    for _ in range(repeats):
        _sync(engine)
        started = time.perf_counter()
        fn()
        _sync(engine)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _reference_latent(engine: EchoEngine) -> np.ndarray:
    rng = np.random.default_rng(0)
    return engine.encode_speaker((rng.standard_normal(10 * SAMPLE_RATE) * 0.1).astype(np.float32))


def timed_requests(
    scheduler: Scheduler,
    requests: list[list[str]],
    latent: np.ndarray,
    params: SynthesisParams,
    *,
    pieces: bool = False,
) -> list[dict[str, float]]:
    """Send `requests` at once (one thread each, as Modal inputs arrive); per request: seconds to the
    first audio (the first chunk, or with `pieces` the first block's) and to the last, and seconds of
    audio."""
    results: list[dict[str, float]] = [{} for _ in requests]
    gate = threading.Event()
    scheduler.call(gate.wait)  # all requests wait together, as a burst does

    def ask(n: int) -> None:
        started = time.perf_counter()
        audio = 0.0
        for chunk in scheduler.stream(requests[n], latent, params, seed=n, pieces=pieces):
            audio += chunk.audio.size / SAMPLE_RATE
            if chunk.audio.size:
                results[n].setdefault("first_s", time.perf_counter() - started)
        results[n].update(total_s=time.perf_counter() - started, audio_s=audio)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    while len(scheduler.planner.waiting) < sum(map(len, requests)):
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join()
    return results


class EndsSpeech:
    """An engine whose speech ends where a text's estimate says: its latents are flat (zero) from then on,
    as Echo's are after the last word. `text` sets one end for every row; without it each row's speech
    ends where its own text's estimate says (a request of Echo's length, not random weights' whole
    window). Everything else is the wrapped engine's."""

    def __init__(self, engine: EchoEngine, text: str | None = None) -> None:
        self.engine = engine
        self.end = None if text is None else speech_end(text)

    def sample_rows(self, rows: Any, params: SynthesisParams, window: int, **block: Any) -> Any:
        latents = self.engine.sample_rows(rows, params, window, **block).clone()
        for i, row in enumerate(rows):
            end = self.end if self.end is not None else speech_end(row.text)
            latents[i, max(end - block.get("start", 0), 0) :] = 0.0
        return latents

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def speech_end(text: str) -> int:
    """The latent where speech of `text` ends by the text's estimate (with the lead Echo starts with)."""
    return windows.estimate_latents(text) + round(windows.LEAD_SECONDS * windows.LATENTS_PER_SECOND)


@dataclass
class Timed:
    """One chunk spoken on the calling thread: seconds to its first audio and to its end, its pieces, and
    the forward passes it cost."""

    first_s: float
    total_s: float
    pieces: list[np.ndarray]
    passes: int


def first_audio(engine: Any, text: str, latent: np.ndarray, params: SynthesisParams) -> Timed:
    before = engine.forward_passes
    started = time.perf_counter()
    first, pieces = None, []
    for piece in run_inline(engine, [text], latent, params, seed=0, pieces=True):
        if piece.audio.size:
            first = first or time.perf_counter() - started
            pieces.append(piece.audio)
    return Timed(first or 0.0, time.perf_counter() - started, pieces, engine.forward_passes - before)


def blocks(engine: EchoEngine, latent: np.ndarray, steps: int, repeats: int) -> dict[str, Any]:
    """What block plans buy: first audio, and early stop's saving; and that seams don't click."""
    whole = SynthesisParams(steps=steps, silence_guard_s=None)
    low = replace(whole, block_plan=plans.LOW_LATENCY)
    first_audio(engine, FIRST_SENTENCE, latent, low)  # warm-up
    result: dict[str, Any] = {}
    runs: list[Timed] = []
    for name, text in (("full_window", LONG_CHUNK), ("sentence", FIRST_SENTENCE)):
        runs = [first_audio(engine, text, latent, low) for _ in range(repeats)]
        low_first = statistics.median(run.first_s for run in runs)
        whole_s = statistics.median(first_audio(engine, text, latent, whole).total_s for _ in range(repeats))
        result[name] = {
            "low_latency_first_audio_s": round(low_first, 3),
            "whole_plan_s": round(whole_s, 3),
            "first_audio_ratio": round(low_first / whole_s, 3),
        }
        if name == "full_window":
            # Seams: the sample step across each block boundary against the signal's own steps (a
            # click would stand far above its 99.9th percentile).
            pieces = runs[0].pieces
            steps_abs = np.abs(np.diff(np.concatenate(pieces)))
            seams = np.cumsum([p.size for p in pieces])[:-1]
            result["seams"] = {
                "count": len(seams),
                "largest_seam_step_over_p99_9": round(
                    float(max(steps_abs[s - 1] for s in seams) / np.percentile(steps_abs, 99.9)), 3
                ),
            }
    long_text = "[S1] " + "This sentence is long enough to be given all three blocks of the plan. " * 2
    ends = EndsSpeech(engine, HELLO)
    early = [first_audio(ends, long_text, latent, low) for _ in range(repeats)]
    full = [first_audio(engine, long_text, latent, low) for _ in range(repeats)]
    early_s, full_s = (statistics.median(run.total_s for run in timed) for timed in (early, full))
    result["early_stop"] = {
        "speech_ends_at_latent": ends.end,
        "forward_passes": [early[0].passes, full[0].passes],
        "passes_ratio": round(early[0].passes / full[0].passes, 3),
        "seconds_ratio": round(early_s / full_s, 3),
    }
    return result


def _forward_passes(engine: EchoEngine, fn: Callable[[], Any]) -> int:
    before = engine.forward_passes
    fn()
    return engine.forward_passes - before


def scheduling(engine: EchoEngine, steps: int = 40, repeats: int = 3) -> dict[str, Any]:
    """The CPU suite: what sizing, ordering and batching buy, in ratios measured in one run."""
    params = SynthesisParams(steps=steps)
    latent = _reference_latent(engine)
    scheduler = Scheduler(engine)
    try:

        def one(texts: list[str]) -> dict[str, float]:
            return timed_requests(scheduler, [texts], latent, params)[0]

        def median(texts: list[str], key: str) -> float:
            one(texts)  # warm-up
            return statistics.median(one(texts)[key] for _ in range(repeats))

        hello = one([HELLO])
        hello_s = median([HELLO], "total_s")
        full_s = median([LONG_CHUNK], "total_s")
        single_s = median([FIRST_SENTENCE], "total_s")
        first_of_four_s = median([FIRST_SENTENCE, LONG_CHUNK, LONG_CHUNK, LONG_CHUNK], "first_s")
        alone = _forward_passes(engine, lambda: timed_requests(scheduler, [[HELLO]], latent, params))
        eight = _forward_passes(engine, lambda: timed_requests(scheduler, [[HELLO]] * 8, latent, params))
    finally:
        scheduler.close()
    block_figures = blocks(engine, latent, steps, repeats)
    return {
        "device": str(engine.device),
        "model": engine.revision,
        "steps": steps,
        "repeats": repeats,
        "short_vs_full": {
            "hello_window": window_for(HELLO),
            "hello_audio_s": round(hello["audio_s"], 2),
            "hello_s": round(hello_s, 3),
            "full_window_s": round(full_s, 3),
            "cost_ratio": round(hello_s / full_s, 3),
        },
        "first_chunk": {
            "one_chunk_total_s": round(single_s, 3),
            "four_chunk_first_s": round(first_of_four_s, 3),
            "ratio": round(first_of_four_s / single_s, 3),
        },
        "concurrent": {
            "forward_passes_1": alone,
            "forward_passes_8": eight,
            "ratio": round(eight / alone, 2),
        },
        "resampled_chunks": scheduler.planner.resampled,
        "silence_resamples": scheduler.planner.silences,
        "blocks": block_figures,
    }


# --- the GPU suite ---------------------------------------------------------------------------------


def _line(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def forward_times(engine: EchoEngine, repeats: int) -> list[dict[str, Any]]:
    """One CFG forward pass (the common step) per (window, batch): eager, and graphed when captured."""
    rows: list[dict[str, Any]] = []
    latent = _reference_latent(engine)
    params = SynthesisParams(steps=1, cfg_min_t=0.0)  # one step, a CFG one
    graphs, engine.graphs = engine.graphs, None
    for window in BUCKETS:
        for batch in BATCH_SIZES:
            batch_rows = [Row(LONG_CHUNK, latent, n) for n in range(batch)]
            row: dict[str, Any] = {"window": window, "batch": batch}

            def sample(r: list[Row] = batch_rows, w: int = window) -> Any:
                return engine.sample_rows(r, params, w)

            row["eager_s"] = round(_median_seconds(engine, sample, repeats), 4)
            if graphs is not None:
                engine.graphs = graphs
                row["fast_s"] = round(_median_seconds(engine, sample, repeats), 4)
                row["speedup"] = round(row["eager_s"] / row["fast_s"], 2)
                engine.graphs = None
            rows.append(row)
    engine.graphs = graphs
    return rows


def gpu_suite(
    engine: EchoEngine,
    *,
    steps: int,
    repeats: int,
    price_per_second: float,
    fast_path: bool,
    block_batches: tuple[int, ...] = (1, 4, 8),
    concurrent: int = 8,
) -> None:
    """The GPU suite's JSON lines on `engine`'s device. `concurrent`: how many full-window requests arrive
    at once in the batching case; `block_batches`: the batch sizes the low-latency plan is timed at."""
    started = time.perf_counter()
    info = engine.info()
    _line(
        suite="gpu",
        device=info["device_name"],
        dtype=info["dtype"],
        torch=torch.__version__,
        cuda=torch.version.cuda,
        echo_tts=metadata.version("echo-tts"),
        model=engine.revision,
        note="random weights never reach the end of speech: every chunk decodes its whole window",
    )
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    if fast_path:
        _line(step="fast_path", **engine.enable_fast_path())
    for row in forward_times(engine, repeats):
        _line(step="forward_pass", **row)

    params = SynthesisParams(steps=steps)
    latent = _reference_latent(engine)
    scheduler = Scheduler(engine)
    try:
        for name, requests in (
            ("short", [[FIRST_SENTENCE]]),
            ("full_window", [[LONG_CHUNK]]),
            (f"{concurrent}_concurrent_full_window", [[LONG_CHUNK]] * concurrent),
        ):
            timed_requests(scheduler, requests, latent, params)  # warm-up
            runs = [timed_requests(scheduler, requests, latent, params) for _ in range(repeats)]
            first = statistics.median(min(r["first_s"] for r in run) for run in runs)
            total = statistics.median(max(r["total_s"] for r in run) for run in runs)
            audio = sum(r["audio_s"] for r in runs[0])
            _line(
                step="request",
                case=name,
                window=window_for(requests[0][0]),
                first_audio_s=round(first, 3),
                total_s=round(total, 3),
                audio_s=round(audio, 2),
                real_time_factor=round(total / audio, 4),
                chunks_per_second=round(len(requests) / total, 2),
            )
        # The low-latency plan: the first block's latency at batch 1, 4 and 8 (random weights never end
        # speech, so every request runs the whole plan: its real-time factor is the plan's worst case).
        low = replace(params, block_plan=plans.LOW_LATENCY)
        for batch in block_batches:
            requests = [[LONG_CHUNK]] * batch
            timed_requests(scheduler, requests, latent, low, pieces=True)  # warm-up
            runs = [timed_requests(scheduler, requests, latent, low, pieces=True) for _ in range(repeats)]
            first = statistics.median(max(r["first_s"] for r in run) for run in runs)
            total = statistics.median(max(r["total_s"] for r in run) for run in runs)
            audio = runs[0][0]["audio_s"]
            _line(
                step="blocks",
                plan=plans.LOW_LATENCY,
                batch=batch,
                first_block_s=round(first, 3),
                total_s=round(total, 3),
                audio_s=round(audio, 2),
                real_time_factor=round(total / audio, 4),
            )
    finally:
        scheduler.close()

    with torch.inference_mode():
        for window in (213, 640):
            latents = torch.randn((1, window, 80), device=engine.device)

            def decode(lat: torch.Tensor = latents, w: int = window) -> np.ndarray:
                return engine.decode(lat, 0, w)

            _line(step="decode", latents=window, seconds=round(_median_seconds(engine, decode, repeats), 4))

    # The watermark every output gets (modal_tts.watermark): marking and checking 20 s on this device.
    from modal_tts.watermark import Watermarker

    marker = engine.watermarker or Watermarker(engine.device)
    noise = (np.random.default_rng(0).standard_normal(20 * SAMPLE_RATE) * 0.1).astype(np.float32)
    mark_s = _median_seconds(engine, lambda: marker.mark(noise), repeats)
    _line(
        step="watermark",
        audio_s=20,
        mark_s=round(mark_s, 4),
        detect_s=round(_median_seconds(engine, lambda: marker.confidence(noise), repeats), 4),
    )

    # A 20 s /say: the first sentence, then the rest in one chunk, as bot.text splits it.
    twenty = [FIRST_SENTENCE, "[S1] " + "word " * int(18 * 14 / 5)]
    scheduler = Scheduler(engine)
    try:
        says = [timed_requests(scheduler, [twenty], latent, params)[0] for _ in range(repeats)]
    finally:
        scheduler.close()
    gpu_s = statistics.median(r["total_s"] for r in says)
    _line(
        step="cost",
        say_audio_s=round(says[0]["audio_s"], 1),
        gpu_seconds=round(gpu_s, 3),
        price_per_second=price_per_second,
        cost_per_say_usd=round(gpu_s * price_per_second, 6),
        # Issue 19's goal: marking 20 s adds at most 5 % to a 20 s /say's compute on the engine side. An
        # engine with its watermarker marked that /say already; the random full-size one has none.
        watermark_share=round(mark_s / (gpu_s - (mark_s if engine.watermarker is not None else 0.0)), 4),
    )
    peak = torch.cuda.max_memory_allocated(engine.device) / 2**30 if engine.device.type == "cuda" else None
    _line(
        step="done",
        peak_memory_gib=None if peak is None else round(peak, 2),
        wall_s=round(time.perf_counter() - started, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modal_tts.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="the one-shot GPU suite (JSON lines)")
    parser.add_argument(
        "--weights", help="a weights directory (default: tiny on CPU, full-size random with --gpu)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-fast-path", action="store_true", help="GPU suite: eager only")
    parser.add_argument(
        "--price-per-second", type=float, default=H100_PRICE_PER_SECOND, help="GPU price in USD per second"
    )
    args = parser.parse_args(argv)
    if args.weights:
        engine = EchoEngine.from_dir(args.weights, device=args.device)
    elif args.gpu:
        engine = full_size_random_engine(args.device)
    else:
        from modal_tts.tiny import write_tiny_model

        with tempfile.TemporaryDirectory() as tmp:
            engine = EchoEngine.from_dir(write_tiny_model(tmp), device=args.device)
    if args.gpu:
        gpu_suite(
            engine,
            steps=args.steps,
            repeats=args.repeats,
            price_per_second=args.price_per_second,
            fast_path=not args.no_fast_path,
        )
    else:
        print(json.dumps(scheduling(engine, args.steps, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
