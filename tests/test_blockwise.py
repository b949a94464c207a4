"""Blockwise sampling and streaming decode on the tiny model: the real echo-tts code path on CPU."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from echo_tts import inference as echo

from modal_tts import plans, windows
from modal_tts.engine import Row
from modal_tts.params import SAMPLE_RATE, SAMPLES_PER_LATENT, SynthesisParams, chunk_seed
from modal_tts.scheduler import run_inline
from modal_tts.silence import long_silence
from tests.test_engine import echos_own

TEXT = "[S1] A second, rather longer sentence, long enough for a few blocks of speech."
LOW = SynthesisParams(steps=10, block_plan="low-latency", silence_guard_s=None)


class Recorder:
    """The tiny engine, recording each chunk's latents so far and its sampler calls; optionally making
    speech end (latents flat from `flat_from` on), or leaving a silence in a block's first decode."""

    def __init__(self, engine, flat_from: int | None = None, silence_in_block: int | None = None) -> None:
        self.engine = engine
        self.flat_from = flat_from
        self.silence_in_block = silence_in_block
        self.so_far: list[torch.Tensor] = []
        self.calls: list[tuple[int, int]] = []  # (start, window)
        self.seeds: list[int] = []
        self.injected = False

    def sample_rows(self, rows, params, window, **block):
        self.calls.append((block.get("start", 0), window))
        self.seeds.extend(r.seed for r in rows)
        latents = self.engine.sample_rows(rows, params, window, **block)
        if self.flat_from is not None:
            start = block.get("start", 0)
            latents = latents.clone()
            latents[:, max(self.flat_from - start, 0) :] = 0.0
        return latents

    def extend(self, prefix, latents, index):
        so_far = self.engine.extend(prefix, latents, index)
        self.so_far.append(so_far)
        return so_far

    def end_of_speech(self, latents, index):
        return self.engine.end_of_speech(latents, index)

    def decode(self, latents, index, end):
        audio = self.engine.decode(latents, index, end)
        if self.silence_in_block == len(self.calls) - 1 and not self.injected:
            self.injected = True  # in this block's first decode only: its re-sample comes back clean
            start = self.calls[-1][0] * SAMPLES_PER_LATENT + SAMPLE_RATE // 10
            audio = audio.copy()
            audio[start : start + int(1.3 * SAMPLE_RATE)] = 0.0
        return audio


# --- plans ---------------------------------------------------------------------------------------------


def test_plans_are_cut_to_the_text_and_to_a_window_asked_for():
    short = plans.blocks_for("low-latency", "[S1] Hello.", 40)
    assert [(b.start, b.size, b.steps) for b in short] == [(0, 32, 8), (32, 128, 15)]
    long = plans.blocks_for("low-latency", "[S1] " + "word " * 60, 40)
    assert [(b.start, b.size) for b in long] == [(0, 32), (32, 128), (160, 480)]
    assert [b.size for b in plans.blocks_for("low-latency", TEXT, 40, sequence_length=100)] == [32, 68]
    even = plans.blocks_for("even", "[S1] " + "word " * 100, 40)
    assert [b.size for b in even] == [216, 212, 212] and {b.steps for b in even} == {40}
    assert plans.blocks_for("whole", "[S1] Hello.", 40) == [plans.Block(0, 0, 160, 40)]
    for plan in ("low-latency", "even"):  # never longer than what a quota reserves for the text
        assert plans.blocks_for(plan, TEXT, 40)[-1].end == windows.largest_window(TEXT) == 256
    # A flat window wholly inside what was sampled is the end; one reaching past it is not yet.
    assert plans.speech_ended(12, 32) and not plans.speech_ended(13, 32)
    assert (
        plans.block_seed(7, 0) == 7
        and len({plans.block_seed(7, b, a) for b in range(3) for a in (0, 1)}) == 6
    )


# --- the whole plan is today's sampler ----------------------------------------------------------------


def test_the_whole_plan_gives_exactly_echos_own_output(tiny_engine, tiny_latent):
    """One block over the chunk's window: echo-tts's sampler + decode + crop, as before block plans."""
    p = SynthesisParams(steps=12, sequence_length=128, block_plan="whole", silence_guard_s=None)
    ((_, ours),) = list(tiny_engine.synthesize_iter([TEXT], tiny_latent, p, seed=99))

    theirs = tiny_engine.watermark(echos_own(tiny_engine, TEXT, tiny_latent, p, chunk_seed(99, 0)))  # marked
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


# --- blocks after the first ----------------------------------------------------------------------------


def test_a_later_block_attends_to_the_prefix_as_echos_masked_prefix_does(tiny_engine, tiny_latent):
    """Our block call passes only the latents so far; echo's published blockwise sampler passes a
    zero-padded prefix of the whole plan and masks positions from the block's start on. Same output."""
    p = SynthesisParams(steps=4, cfg_min_t=0.0, truncation_factor=None, rescale_k=None, rescale_sigma=None)
    prefix = torch.randn((1, 32, 80), generator=torch.Generator().manual_seed(3))
    ours = tiny_engine.sample_rows([Row(TEXT, tiny_latent, 11)], p, 128, start=32, prefixes=[prefix])

    model = tiny_engine.model
    ids, text_mask = echo.get_text_input_ids_and_mask([TEXT], max_length=None)
    speaker = torch.from_numpy(tiny_latent.astype(np.float32))[None]
    speaker_mask = torch.ones(speaker.shape[:2], dtype=torch.bool)
    kv_text = model.get_kv_cache_text(ids, text_mask)
    kv_speaker = model.get_kv_cache_speaker(speaker)
    kv_text3, kv_speaker3 = (echo._concat_kv_caches(kv, kv, kv) for kv in (kv_text, kv_speaker))
    padded = torch.cat([prefix, torch.zeros((1, 128, 80))], dim=1)
    kv_latent = model.get_kv_cache_latent(torch.cat([padded] * 3))
    x = torch.randn((128, 80), generator=torch.Generator().manual_seed(11))[None]
    schedule = (torch.linspace(1.0, 0.0, p.steps + 1) * 0.999).tolist()
    with torch.inference_mode():
        for t, t_next in itertools.pairwise(schedule):
            v_cond, v_text, v_speaker = model(
                x=torch.cat([x] * 3),
                t=torch.full((3,), t),
                text_mask=torch.cat([text_mask, torch.zeros_like(text_mask), text_mask]),
                speaker_mask=torch.cat([speaker_mask, speaker_mask, torch.zeros_like(speaker_mask)]),
                kv_cache_text=kv_text3,
                kv_cache_speaker=kv_speaker3,
                start_pos=32,
                kv_cache_latent=kv_latent,
            ).chunk(3)
            v = v_cond + p.cfg_scale_text * (v_cond - v_text) + p.cfg_scale_speaker * (v_cond - v_speaker)
            x = x + v * (t_next - t)
    np.testing.assert_allclose(ours.numpy(), x.numpy(), atol=1e-4)
    other = tiny_engine.sample_rows([Row(TEXT, tiny_latent, 11)], p, 128, start=32, prefixes=[prefix * -1])
    assert (other - ours).abs().max() > 1e-3  # the prefix is heard


def test_streamed_blocks_equal_one_decode_of_the_chunks_latents(tiny_engine, tiny_latent):
    """Each block's new samples, joined, are one full decode of the chunk's final latents; the seams
    step no more than the signal does elsewhere (no click)."""
    engine = Recorder(tiny_engine)
    pieces = list(run_inline(engine, [TEXT], tiny_latent, LOW, seed=5, pieces=True))
    assert [(p.block, p.last) for p in pieces] == [(0, False), (1, False), (2, True)]
    assert engine.calls == [(0, 32), (32, 128), (160, 96)]  # the last block ends at the text's cap
    streamed = np.concatenate([p.audio for p in pieces])
    final = engine.so_far[-1]
    whole = tiny_engine.decode(final, 0, tiny_engine.end_of_speech(final, 0))
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    seams = np.cumsum([p.audio.size for p in pieces])[:-1]
    steps = np.abs(np.diff(streamed))
    assert max(steps[s - 1] for s in seams) <= np.percentile(steps, 99.9)


def test_run_inline_joins_the_pieces_of_a_chunk(tiny_engine, tiny_latent):
    pieces = list(run_inline(tiny_engine, [TEXT, TEXT], tiny_latent, LOW, seed=5, pieces=True))
    chunks = list(run_inline(tiny_engine, [TEXT, TEXT], tiny_latent, LOW, seed=5))
    assert [c.index for c in chunks] == [0, 1] and [p.index for p in pieces] == [0, 0, 0, 1, 1, 1]
    for chunk in chunks:
        mine = [p.audio for p in pieces if p.index == chunk.index]
        np.testing.assert_array_equal(chunk.audio, np.concatenate(mine))


def test_early_stop_samples_no_block_after_the_end_of_speech(tiny_engine, tiny_latent):
    """Speech that ends inside the second block (latents flat from 100 on): the 480-latent block is never
    sampled, and the audio stops where speech did."""
    long_text = "[S1] " + "word " * 60
    engine = Recorder(tiny_engine, flat_from=100)
    before = tiny_engine.forward_passes
    pieces = list(run_inline(engine, [long_text], tiny_latent, LOW, seed=5, pieces=True))
    early = tiny_engine.forward_passes - before
    assert engine.calls == [(0, 32), (32, 128)] and pieces[-1].last
    assert sum(p.audio.size for p in pieces) == 100 * SAMPLES_PER_LATENT
    engine = Recorder(tiny_engine)
    before = tiny_engine.forward_passes
    list(run_inline(engine, [long_text], tiny_latent, LOW, seed=5))
    assert engine.calls == [(0, 32), (32, 128), (160, 480)]
    assert tiny_engine.forward_passes - before > early


def test_a_long_silence_inside_speech_is_sampled_again_once(tiny_engine, tiny_latent):
    guarded = SynthesisParams(steps=10, block_plan="low-latency", silence_guard_s=1.0)
    engine = Recorder(tiny_engine, silence_in_block=2)
    pieces = list(run_inline(engine, [TEXT], tiny_latent, guarded, seed=5, pieces=True))
    assert engine.calls == [(0, 32), (32, 128), (160, 96), (160, 96)]  # the third block twice
    assert [p.silences for p in pieces] == [0, 0, 1]
    assert engine.seeds[2] != engine.seeds[3]  # with new noise
    streamed = np.concatenate([p.audio for p in pieces])
    assert long_silence(streamed, 1.0) is None


@pytest.mark.parametrize("plan", ["whole", "low-latency"])
def test_the_silence_guard_never_fires_on_clean_output(tiny_engine, tiny_latent, plan):
    guarded = SynthesisParams(steps=6, block_plan=plan, silence_guard_s=1.0)
    texts = ["[S1] Hello there.", TEXT, "[S1] " + "word " * 40]
    engine = Recorder(tiny_engine)
    chunks = list(run_inline(engine, texts, tiny_latent, guarded, seed=21))
    assert [c.silences for c in chunks] == [0, 0, 0]


# --- the fast path's block graphs ------------------------------------------------------------------------


def eager_capture(forward, pool):
    """A CPU stand-in for CUDA graph capture: replay reruns the forward pass on the same static inputs."""
    out = forward()
    return (lambda: out.copy_(forward())), out


def test_the_fast_path_covers_the_low_latency_blocks(tiny_model_dir, tiny_latent, monkeypatch):
    """Graphs for every (rows, window, start) of the low-latency plan, checked against eager at capture,
    replayed with each block's prefix loaded: the same speech as without them. (On a CPU the "graph"
    reruns the forward pass on the graph's static inputs: what is checked is that the right inputs are
    in place for every block; CUDA's own capture is the GPU suite's to check.)"""
    from echo_tts import model as echo_model

    from modal_tts.engine import EchoEngine
    from modal_tts.fastpath import FixedShapes

    for name in ("precompute_freqs_cis", "get_timestep_embedding"):  # capture patches echo's tables
        monkeypatch.setattr(echo_model, name, getattr(echo_model, name))
    params = SynthesisParams(steps=3, block_plan="low-latency", silence_guard_s=None)
    plain = Recorder(EchoEngine.from_dir(tiny_model_dir))
    expected = list(run_inline(plain, [TEXT], tiny_latent, params, seed=5, pieces=True))

    fast = EchoEngine.from_dir(tiny_model_dir)
    shapes = FixedShapes(batch_sizes=(1,), text_tokens=128, speaker_latents=512)  # small, for a CPU
    report = fast.enable_fast_path(capture=eager_capture, shapes=shapes)
    assert report["fast_path"] == "cuda-graphs", report
    assert max(report["relative_error"].values()) < 1e-4 and "1x128@32" in report["relative_error"]
    assert {(w, s) for _, w, s in fast.graphs.graphs} >= {(32, 0), (128, 32), (96, 160), (480, 160), (640, 0)}
    used = []
    forward = fast.graphs.forward
    monkeypatch.setattr(
        fast.graphs, "forward", lambda x, t, start=0: used.append(start) or forward(x, t, start)
    )
    recorded = Recorder(fast)
    got = list(run_inline(recorded, [TEXT], tiny_latent, params, seed=5, pieces=True))
    assert sorted(set(used)) == [0, 32, 160]  # every block of the plan replayed a graph
    assert [(p.block, p.audio.size) for p in got] == [(p.block, p.audio.size) for p in expected]
    # Each block's latents, the prefix of the next: a stale prefix in a graph would move them by ~0.2.
    for ours, theirs in zip(recorded.so_far, plain.so_far, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4)
    for ours, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(ours.audio, theirs.audio, atol=2e-4)
