"""The benchmark's timing path on the tiny model at toy settings (real runs: `python -m modal_tts.bench`)."""

from __future__ import annotations

from modal_tts.bench import run
from modal_tts.params import SynthesisParams


def test_bench_reports_rtf_and_batch_throughput(tiny_engine):
    report = run(tiny_engine, SynthesisParams(steps=2, sequence_length=32), batch=2, repeats=1)
    assert report["device"] == "cpu" and report["steps"] == 2
    one, two = report["batch_1"], report["batch_2"]
    assert 0 < one["audio_seconds"] <= round(32 * 2048 / 44100, 2)  # at most the 32 latents asked for
    assert two["audio_seconds"] > one["audio_seconds"]
    assert one["real_time_factor"] > 0 and two["seconds_per_chunk"] > 0
    assert report["batch_speedup"] > 0 and report["encode_10s_reference_s"] > 0


async def test_pipeline_bench_times_each_stage_of_a_20_second_say():
    from bench.pipeline import run as run_pipeline

    report = await run_pipeline(runs=2)
    assert report["chunks"] >= 1 and 19 < report["audio_seconds"] < 22
    stages = report["stages_median_ms"]
    assert all(ms > 0 for ms in stages.values())
    assert report["file_bytes"] > 50_000 and report["median_ms"] >= max(stages.values())
