"""EchoEngine and the tiny model: the real echo-tts code path on CPU."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from echo_tts import inference as echo

from modal_tts.engine import (
    DAC_WEIGHTS,
    ECHO_WEIGHTS,
    PCA_STATE,
    EchoEngine,
    Row,
    WeightsError,
)
from modal_tts.fastpath import FixedShapes
from modal_tts.params import (
    SAMPLES_PER_LATENT,
    InvalidParams,
    SynthesisParams,
    chunk_seed,
)
from modal_tts.tiny import write_tiny_model
from tests.media import speech_like

FAST = SynthesisParams(steps=10, sequence_length=160)
TEXTS = ["[S1] Hello there.", "[S1] A second, rather longer sentence.", "[S1] Third one!"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- the tiny model and loading ------------------------------------------------------------------


def test_tiny_model_has_the_real_layout_and_depends_only_on_the_seed(tmp_path, tiny_model_dir):
    again = write_tiny_model(tmp_path / "again", seed=0)
    other = write_tiny_model(tmp_path / "other", seed=1)
    for name in (ECHO_WEIGHTS, PCA_STATE, DAC_WEIGHTS, "config.json"):
        assert (tiny_model_dir / name).read_bytes() == (again / name).read_bytes(), name
    assert (tiny_model_dir / ECHO_WEIGHTS).read_bytes() != (other / ECHO_WEIGHTS).read_bytes()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert set(config) == {"echo", "dac"} and config["echo"]["latent_size"] == 80


def test_revision_is_stable_and_tracks_the_weights(tmp_path, tiny_model_dir, tiny_engine):
    assert tiny_engine.revision.startswith("echo-")
    assert EchoEngine.from_dir(tiny_model_dir).revision == tiny_engine.revision
    other = EchoEngine.from_dir(write_tiny_model(tmp_path / "other", seed=1))
    assert other.revision != tiny_engine.revision


def test_blockwise_weights_are_kept_unless_dropped(tiny_model_dir, tiny_engine):
    from safetensors import safe_open

    def blockwise(names):
        return [k for k in names if "latent_encoder" in k or "wk_latent" in k or "wv_latent" in k]

    with safe_open(str(tiny_model_dir / ECHO_WEIGHTS), framework="pt") as f:
        in_file = blockwise(f.keys())
    assert in_file and sorted(blockwise(tiny_engine.model.state_dict())) == sorted(in_file)
    assert tiny_engine.blockwise
    lean = EchoEngine.from_dir(tiny_model_dir, blockwise=False)
    assert not blockwise(lean.model.state_dict()) and not lean.blockwise
    assert all(p.device.type == "cpu" and not p.is_meta for p in lean.model.parameters())
    with pytest.raises(InvalidParams, match="whole plan"):
        prefix = torch.zeros((1, 32, 80))
        lean.sample_rows(
            [Row(TEXTS[0], np.zeros((8, 80), np.float16), 0)], FAST, 32, start=32, prefixes=[prefix]
        )


def test_the_dacs_weight_norm_is_folded_without_changing_a_sample(tiny_model_dir, tiny_engine):
    """Weights baked once at load decode and encode exactly as the weight-normed DAC does."""
    import safetensors.torch

    from modal_tts.engine import build_dac

    normed = build_dac(json.loads((tiny_model_dir / "config.json").read_text())["dac"]).eval()
    normed.load_state_dict(safetensors.torch.load_file(str(tiny_model_dir / DAC_WEIGHTS)))
    assert not any("parametrizations" in k for k in tiny_engine.fish_ae.state_dict())
    latents = torch.randn((1, 48, 80), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours = echo.ae_decode(tiny_engine.fish_ae, tiny_engine.pca, latents)
        theirs = echo.ae_decode(normed, tiny_engine.pca, latents)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)
    pcm = speech_like(2.0)
    with torch.inference_mode():
        audio = torch.from_numpy(pcm)[None, None]
        ours = echo.ae_encode(tiny_engine.fish_ae, tiny_engine.pca, audio)
        theirs = echo.ae_encode(normed, tiny_engine.pca, audio)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", [ECHO_WEIGHTS, PCA_STATE, DAC_WEIGHTS])
def test_a_missing_weights_file_is_named(tmp_path, tiny_model_dir, name):
    root = _copy(tiny_model_dir, tmp_path / "w")
    (root / name).unlink()
    with pytest.raises(WeightsError, match=name.replace(".", r"\.")):
        EchoEngine.from_dir(root)


def test_weights_that_do_not_fit_the_config_are_named(tmp_path, tiny_model_dir):
    root = _copy(tiny_model_dir, tmp_path / "w")
    config = json.loads((root / "config.json").read_text())
    config["echo"]["model_size"] = 96
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"echo/pytorch_model\.safetensors.*wrong shape"):
        EchoEngine.from_dir(root)


def test_a_truncated_weights_file_is_named(tmp_path, tiny_model_dir):
    root = _copy(tiny_model_dir, tmp_path / "w")
    data = (root / DAC_WEIGHTS).read_bytes()
    (root / DAC_WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"dac/pytorch_model\.safetensors"):
        EchoEngine.from_dir(root)


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        EchoEngine.from_dir(tmp_path / "nowhere")


# --- speaker latents ------------------------------------------------------------------------------


def test_encode_speaker_gives_a_float16_latent_in_patches(tiny_engine):
    latent = tiny_engine.encode_speaker(speech_like(7.3))
    assert latent.dtype == np.float16 and latent.shape[1] == 80
    assert latent.shape[0] == (int(7.3 * 44100) // SAMPLES_PER_LATENT) // 4 * 4
    assert np.isfinite(latent).all() and np.abs(latent).max() > 0


def test_encode_speaker_rejects_audio_too_short_for_one_patch(tiny_engine):
    with pytest.raises(InvalidParams, match="at least"):
        tiny_engine.encode_speaker(np.zeros(4000, dtype=np.float32))


# --- synthesis ------------------------------------------------------------------------------------


def test_a_batch_of_three_texts_gives_three_finite_arrays(tiny_engine, tiny_latent):
    outputs = tiny_engine.synthesize(TEXTS, tiny_latent, FAST, seed=7)
    assert len(outputs) == 3
    for audio in outputs:
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert 0 < audio.size <= FAST.sequence_length * SAMPLES_PER_LATENT
        assert audio.size % SAMPLES_PER_LATENT == 0  # whole latent frames at 44.1 kHz
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_the_default_settings_make_up_to_30_seconds(tiny_engine, tiny_latent):
    (audio,) = tiny_engine.synthesize(TEXTS[:1], tiny_latent, SynthesisParams(), seed=0)
    assert 0 < audio.size / 44_100 <= 640 * 2048 / 44_100 < 29.8


def test_same_seed_same_audio_other_seed_other_audio(tiny_engine, tiny_latent):
    a = tiny_engine.synthesize(TEXTS, tiny_latent, FAST, seed=123)
    b = tiny_engine.synthesize(TEXTS, tiny_latent, FAST, seed=123)
    c = tiny_engine.synthesize(TEXTS, tiny_latent, FAST, seed=124)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    n = min(a[0].size, c[0].size)
    assert np.abs(a[0][:n] - c[0][:n]).max() > 1e-3


def test_batched_chunks_equal_the_same_chunks_alone(tiny_engine, tiny_latent):
    batched = tiny_engine.synthesize(TEXTS, tiny_latent, FAST, seed=42)
    for i, text in enumerate(TEXTS):
        rows = [Row(text, tiny_latent, chunk_seed(42, i))]
        ((_, alone),) = list(tiny_engine.synthesize_rows(rows, FAST))
        # Equal up to the float rounding of batched kernels (padding is masked out).
        assert alone.shape == batched[i].shape
        np.testing.assert_allclose(alone, batched[i], atol=2e-4)


def test_rows_with_different_voices_share_a_batch(tiny_engine, tiny_latent):
    other = tiny_engine.encode_speaker(speech_like(11.0, seed=3))
    assert other.shape[0] != tiny_latent.shape[0]
    rows = [Row(TEXTS[0], tiny_latent, 5), Row(TEXTS[1], other, 6)]
    together = dict(tiny_engine.synthesize_rows(rows, FAST))
    for i, row in enumerate(rows):
        ((_, alone),) = list(tiny_engine.synthesize_rows([row], FAST))
        np.testing.assert_allclose(alone, together[i], atol=2e-4)


def test_synthesize_iter_yields_in_order(tiny_engine, tiny_latent):
    indices = [i for i, _ in tiny_engine.synthesize_iter(TEXTS, tiny_latent, FAST, seed=1)]
    assert indices == [0, 1, 2]


def echos_own(engine: EchoEngine, text: str, latent: np.ndarray, p: SynthesisParams, seed: int) -> np.ndarray:
    """What echo-tts itself makes of `text` with these settings and noise seed: its sampler, decode and
    crop at the flattening point."""
    speaker = torch.from_numpy(latent.astype(np.float32))[None]
    mask = torch.ones(speaker.shape[:2], dtype=torch.bool)
    ids, text_mask = echo.get_text_input_ids_and_mask([text], max_length=None)
    sample = partial(
        echo.sample_euler_cfg_independent_guidances,
        num_steps=p.steps,
        cfg_scale_text=p.cfg_scale_text,
        cfg_scale_speaker=p.cfg_scale_speaker,
        cfg_min_t=p.cfg_min_t,
        cfg_max_t=p.cfg_max_t,
        truncation_factor=p.truncation_factor,
        rescale_k=p.rescale_k,
        rescale_sigma=p.rescale_sigma,
        speaker_kv_scale=p.speaker_kv_scale,
        speaker_kv_max_layers=p.speaker_kv_max_layers,
        speaker_kv_min_t=p.speaker_kv_min_t,
        sequence_length=p.sequence_length,
    )
    latent_out = sample(engine.model, speaker, mask, ids, text_mask, seed)
    decoded = echo.ae_decode(engine.fish_ae, engine.pca, latent_out)
    return echo.crop_audio_to_flattening_point(decoded, latent_out[0])[0, 0].numpy()


def test_sampler_matches_echos_own_sampler(tiny_engine, tiny_latent):
    """Same noise in, same audio out as echo-tts's sampler + decode + crop."""
    p = SynthesisParams(steps=12, sequence_length=128, speaker_kv_scale=1.5)
    text, seed = TEXTS[1], 99
    ((_, ours),) = list(tiny_engine.synthesize_rows([Row(text, tiny_latent, seed)], p))
    theirs = tiny_engine.watermark(echos_own(tiny_engine, text, tiny_latent, p, seed))  # ours is marked
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


def test_force_speaker_changes_the_output(tiny_engine, tiny_latent):
    plain = tiny_engine.synthesize(TEXTS[:1], tiny_latent, FAST, seed=3)[0]
    forced = tiny_engine.synthesize(
        TEXTS[:1],
        tiny_latent,
        SynthesisParams(steps=10, sequence_length=160, speaker_kv_scale=1.5),
        seed=3,
    )[0]
    n = min(plain.size, forced.size)
    assert np.abs(plain[:n] - forced[:n]).max() > 1e-4


@pytest.mark.parametrize(
    ("texts", "latent_shape", "message"),
    [
        ([], (8, 80), "At least one text"),
        (["  "], (8, 80), "empty"),
        (["x" * 769], (8, 80), "769 bytes"),
        (["ok"], (6, 80), "multiples of 4"),
        (["ok"], (8, 79), r"\[T, 80\]"),
        (["ok"], (6404, 80), "6400"),
    ],
)
def test_bad_requests_are_refused_before_sampling(tiny_engine, texts, latent_shape, message):
    latent = np.zeros(latent_shape, dtype=np.float16)
    with pytest.raises(InvalidParams, match=message):
        tiny_engine.synthesize(texts, latent, FAST, seed=0)


def test_seed_out_of_range_is_refused(tiny_engine, tiny_latent):
    with pytest.raises(InvalidParams, match="seed"):
        tiny_engine.synthesize(TEXTS[:1], tiny_latent, FAST, seed=-1)


def test_a_short_text_comes_back_short_and_costs_a_short_window(tiny_engine, tiny_latent):
    before = tiny_engine.forward_passes
    (hello,) = tiny_engine.synthesize(["[S1] Hello."], tiny_latent, SynthesisParams(steps=4), seed=0)
    assert hello.size / 44_100 <= 8.0  # a 160-latent window, not 640
    assert tiny_engine.forward_passes - before == 4


def test_fixed_shapes_pad_without_changing_the_output(tiny_engine, tiny_latent):
    """What the CUDA graphs replay: rows, text and speaker padded to fixed shapes, with masks."""
    other = tiny_engine.encode_speaker(speech_like(11.0, seed=3))
    rows = [Row(TEXTS[0], tiny_latent, 5), Row(TEXTS[1], other, 6), Row(TEXTS[2], tiny_latent, 7)]
    exact = tiny_engine.sample_rows(rows, FAST, 96)
    tiny_engine.use_fixed_shapes(FixedShapes(batch_sizes=(1, 4), text_tokens=768, speaker_latents=1024))
    try:
        padded = tiny_engine.sample_rows(rows, FAST, 96)
    finally:
        tiny_engine.use_fixed_shapes(None)
    assert padded.shape == exact.shape == (3, 96, 80)
    np.testing.assert_allclose(padded.numpy(), exact.numpy(), atol=2e-4)


def test_the_fast_path_is_cuda_only(tiny_engine):
    assert tiny_engine.enable_fast_path()["fast_path"] == "off" and tiny_engine.graphs is None


def test_a_fast_path_that_fails_to_capture_leaves_the_engine_eager(tiny_engine, monkeypatch):
    monkeypatch.setattr(type(tiny_engine), "device", property(lambda self: torch.device("cuda")))

    def broken(self, shapes, graphs):
        self.use_fixed_shapes(shapes)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(type(tiny_engine), "_capture_fast_path", broken)
    report = tiny_engine.enable_fast_path(max_batch=2)
    assert report["fast_path"] == "off" and "stream is capturing" in report["why"]
    assert tiny_engine.graphs is None and tiny_engine.shapes is None
