"""The benchmarks' code paths on the tiny model at toy settings (real runs: `python -m modal_tts.bench`)."""

from __future__ import annotations

import json

import pytest

from modal_tts.bench import gpu_suite, scheduling


def test_the_scheduling_bench_reports_sizing_ordering_and_sharing(tiny_engine):
    report = scheduling(tiny_engine, steps=2, repeats=1)
    short = report["short_vs_full"]
    assert short["hello_window"] == 160 and 0 < short["hello_audio_s"] <= 8.0
    assert 0 < short["cost_ratio"] and report["first_chunk"]["ratio"] > 0
    # Eight requests waiting together share one call per step: the same passes as one.
    assert report["concurrent"]["ratio"] == 1.0 and report["concurrent"]["forward_passes_1"] == 2
    blocks = report["blocks"]
    # Speech that ends in the second block: its 8 + 15 steps, not the third block's 20 more.
    assert blocks["early_stop"]["forward_passes"] == [23, 43]
    assert blocks["seams"]["count"] == 2 and blocks["seams"]["largest_seam_step_over_p99_9"] <= 1.0
    assert blocks["full_window"]["first_audio_ratio"] > 0 and blocks["sentence"]["first_audio_ratio"] > 0


def test_the_gpu_suite_runs_end_to_end_on_any_device(tiny_engine, capsys):
    gpu_suite(
        tiny_engine,
        steps=2,
        repeats=1,
        price_per_second=0.001,
        fast_path=True,
        block_batches=(1,),
        concurrent=2,
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    steps = [line.get("step", line.get("suite")) for line in lines]
    assert steps[0] == "gpu" and "end of speech" in lines[0]["note"]
    assert lines[1] == {"step": "fast_path", "fast_path": "off", "why": "CUDA only"}
    assert steps.count("forward_pass") == 20 and steps[-1] == "done"
    cases = [line["case"] for line in lines if line.get("step") == "request"]
    assert cases == ["short", "full_window", "2_concurrent_full_window"]
    (blocks,) = [line for line in lines if line.get("step") == "blocks"]
    assert blocks["batch"] == 1 and 0 < blocks["first_block_s"] < blocks["total_s"]
    cost = next(line for line in lines if line.get("step") == "cost")
    assert cost["gpu_seconds"] > 0 and cost["cost_per_say_usd"] > 0
    (marking,) = [line for line in lines if line.get("step") == "watermark"]
    unmarked_s = cost["gpu_seconds"] - marking["mark_s"]  # the tiny engine marks its output
    assert cost["watermark_share"] == pytest.approx(marking["mark_s"] / unmarked_s, rel=0.01)


async def test_pipeline_bench_times_each_stage_of_a_20_second_say():
    from bench.pipeline import run as run_pipeline

    report = await run_pipeline(runs=2)
    assert report["chunks"] >= 1 and 19 < report["audio_seconds"] < 22
    stages = report["stages_median_ms"]
    assert all(ms > 0 for ms in stages.values())
    assert report["file_bytes"] > 50_000 and report["median_ms"] >= max(stages.values())
    modal = report["modal_path"]  # the engine side's file: the bot neither stitches nor encodes
    assert 0 < modal["bot_cpu_ms_engine_encodes"] < modal["bot_cpu_ms_bot_encodes"]
    assert 50_000 < modal["wire_bytes_file"] < modal["wire_bytes_pcm"] / 5


async def test_load_bench_gives_every_member_of_a_small_burst_their_file():
    from bench.load import burst

    report = await burst(requests=6, guilds=3, in_flight=2, chunk_s=0.05)
    assert report["files"] == 6 and report["files_per_channel"] == [2]  # each channel got its own two
    assert report["chunks_made"] == 6 * report["chunks_per_request"]
    assert report["ideal_s"] == pytest.approx(3 * report["chunks_per_request"] * 0.05)
    for key in ("makespan_s", "ratio", "loop_lag_p99_ms", "peak_rss_mb", "peak_pss_mb", "cpu_floor_s"):
        assert report[key] >= 0
    assert {"late_acks", "load_average", "bot_maxrss_mb", "cores"} <= set(report)


async def test_the_autoread_bench_measures_post_to_first_packet():
    from bench.autoread import measure

    report = await measure(runs=2, chunk_s=0.05)
    assert report["runs"] == 2 and report["first_packet_ms_median"] >= 50  # never before the chunk exists
    assert {"bot_overhead_ms_median", "bot_overhead_ms_p90", "first_post_with_join_ms"} <= set(report)


async def test_the_api_bench_measures_first_bytes_overhead_and_sharing():
    from bench.api import measure

    report = await measure(requests=2, concurrent=4, fmt="wav", ramp_s=0.2)
    assert report["completed"] == 8 and report["errors"] == []
    assert report["rows_per_batch"] > 1  # concurrent streams shared the engine's batches
    assert report["burst_most_at_once"] == 4
    assert report["ttfb_ms"] > 0 and report["engine_first_ms"] > 0
    assert report["ttfb_goal_ms"] == pytest.approx(1.1 * report["engine_first_ms"] + 20, abs=0.2)
    for key in ("sequential_overhead_p50_ms", "ramped_overhead_p99_ms", "burst_before_engine_p99_ms"):
        assert key in report
    assert isinstance(report["ttfb_ok"], bool) and isinstance(report["overhead_ok"], bool)
