"""EchoEngine: Echo-TTS weights on one device, turning reference audio into speaker latents and text into
speech. Built on the `echo_tts` package's model classes and sampler helpers; no Modal import, so the same
code runs in the Modal container, in the bot's local backend and in CPU tests.

Weights directory (the files of the Hugging Face repos, laid out as `download_weights` writes them):

    echo/pytorch_model.safetensors   jordand/echo-tts-base   EchoDiT
    echo/pca_state.safetensors       jordand/echo-tts-base   PCA between DAC latents and Echo's 80 dims
    dac/pytorch_model.safetensors    jordand/fish-s1-dac-min Fish S1-DAC autoencoder
    config.json                      optional: {"echo": {EchoDiT kwargs}, "dac": {see build_dac}}

Batching: every text of a request goes through one sampler call. Echo's own sampler draws the noise of a
whole batch from one generator, so a text's audio would depend on its neighbours; ours draws each row's
noise from its own seed (`chunk_seed(seed, i)`), which makes a batched chunk equal to the same chunk
synthesised alone (up to float rounding of batched kernels) and lets requests share a batch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from echo_tts import inference as echo
from echo_tts.autoencoder import (
    DAC,
    DownsampleResidualVectorQuantize,
    ModelArgs,
    WindowLimitedTransformer,
    build_ae,
)
from echo_tts.model import EchoDiT
from torch.nn.utils import parametrize

from modal_tts import plans
from modal_tts.fastpath import BATCH_SIZES, MATCH_TOLERANCE, Capture, CudaGraphs, FixedShapes, cuda_capture
from modal_tts.params import (
    LATENT_SIZE,
    MAX_SEQUENCE_LENGTH,
    MAX_SPEAKER_LATENT_LENGTH,
    SAMPLE_RATE,
    SAMPLES_PER_LATENT,
    SPEAKER_PATCH_SIZE,
    InvalidParams,
    SynthesisParams,
    check_latent,
    check_seed,
    check_texts,
)
from modal_tts.prerequisites import (
    CONFIG,
    DAC_WEIGHTS,
    ECHO_WEIGHTS,
    PCA_STATE,
    WEIGHT_FILES,
    missing_weight_files,
)
from modal_tts.scheduler import RowSpec as Row
from modal_tts.scheduler import run_inline
from modal_tts.windows import BUCKETS

if TYPE_CHECKING:
    from modal_tts.watermark import Watermarker

# The sizes of jordand/echo-tts-base.
OFFICIAL_ECHO_CONFIG: dict[str, Any] = dict(
    latent_size=80,
    model_size=2048,
    num_layers=24,
    num_heads=16,
    intermediate_size=5888,
    norm_eps=1e-5,
    text_vocab_size=256,
    text_model_size=1280,
    text_num_layers=14,
    text_num_heads=10,
    text_intermediate_size=3328,
    speaker_patch_size=4,
    speaker_model_size=1280,
    speaker_num_layers=14,
    speaker_num_heads=10,
    speaker_intermediate_size=3328,
    timestep_embed_size=512,
    adaln_rank=256,
)

# Modules only blockwise sampling uses (`modal_tts.plans`): the released checkpoint carries them; an
# engine that never samples in blocks can drop them and save their memory.
_BLOCKWISE_PREFIXES = ("latent_encoder.", "latent_norm")
_BLOCKWISE_PARTS = (".wk_latent", ".wv_latent")


class WeightsError(RuntimeError):
    """A weights file is missing or does not fit the model; the message names the file."""


def _is_blockwise(key: str) -> bool:
    return key.startswith(_BLOCKWISE_PREFIXES) or any(p in key for p in _BLOCKWISE_PARTS)


def build_dac(cfg: dict[str, Any] | None) -> DAC:
    """The Fish S1-DAC at the official sizes (`cfg` None) or at the sizes `cfg` gives.

    `cfg` keys mirror `echo_tts.autoencoder.build_ae`: encoder_dim, encoder_rates, latent_dim,
    decoder_dim, decoder_rates, encoder_transformer_layers, decoder_transformer_layers, transformer
    (ModelArgs overrides for the encoder/decoder transformers), quantizer (DownsampleResidualVectorQuantize
    kwargs) and quantizer_transformer (ModelArgs kwargs plus window_size).
    """
    if cfg is None:
        return build_ae()
    cfg = dict(cfg)
    q_args = dict(cfg.pop("quantizer_transformer"))
    window = q_args.pop("window_size", 128)
    q_config = ModelArgs(**q_args)
    latent_dim = cfg["latent_dim"]

    def make_transformer() -> WindowLimitedTransformer:
        return WindowLimitedTransformer(
            causal=True, window_size=window, input_dim=latent_dim, config=q_config
        )

    q_kwargs = dict(cfg.pop("quantizer"))
    q_kwargs["downsample_factor"] = tuple(q_kwargs.get("downsample_factor", (2, 2)))
    quantizer = DownsampleResidualVectorQuantize(
        input_dim=latent_dim,
        quantizer_dropout=0.0,
        **q_kwargs,
        pre_module=make_transformer(),
        post_module=make_transformer(),
    )
    overrides = dict(cfg.pop("transformer", {}))

    def transformer_config(**kw: Any) -> ModelArgs:
        return ModelArgs(**{**dict(dropout_rate=0.0, attn_dropout_rate=0.0), **overrides, **kw})

    return DAC(
        quantizer=quantizer,
        sample_rate=SAMPLE_RATE,
        causal=True,
        transformer_general_config=transformer_config,
        **cfg,
    )


def _read_config(root: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    path = root / CONFIG
    if not path.exists():
        return dict(OFFICIAL_ECHO_CONFIG), None
    try:
        cfg = json.loads(path.read_text())
        echo_cfg = {**OFFICIAL_ECHO_CONFIG, **cfg.get("echo", {})}
        return echo_cfg, cfg.get("dac")
    except (OSError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{path} is not a valid model config: {exc}") from exc


def _load_state(root: Path, name: str) -> dict[str, torch.Tensor]:
    path = root / name
    if not path.is_file():
        raise WeightsError(f"Missing weights file {path} (expected layout: {', '.join(WEIGHT_FILES)}).")
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise WeightsError(f"Weights file {path} is unreadable: {exc}") from exc


def _assign_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, *, blockwise: bool = False
) -> None:
    """Load `state` into a meta-device module, insisting that every parameter and buffer is there
    (the blockwise modules too when `blockwise`, else they are left out)."""
    expected = {k: v for k, v in module.state_dict().items() if blockwise or not _is_blockwise(k)}
    state = {k: v for k, v in state.items() if blockwise or not _is_blockwise(k)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} with the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                f"model {tuple(expected[k].shape)})"
            )
        raise WeightsError(
            f"Weights file {path} does not match the model config: {'; '.join(detail)} tensors. "
            "Check config.json against the files."
        )
    module.load_state_dict(state, strict=False, assign=True)


def fold_weight_norm(fish_ae: DAC) -> int:
    """Bake each weight-normed conv's weight into a plain one; returns how many.

    The DAC's convs are weight-normalised: every forward recomputes each weight from its direction and
    norm, a fixed cost per call whatever the length (on the tiny model, 85% of a 1.5 s block's decode).
    Inference never changes the weights, so they are computed once here; the output is the same.
    """
    folded = 0
    with torch.no_grad():
        for module in fish_ae.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
                folded += 1
    return folded


def _drop_blockwise(model: EchoDiT) -> None:
    del model.latent_encoder, model.latent_norm
    for block in model.blocks:
        attention: Any = block.attention  # typed as Tensor | Module by torch's ModuleList
        del attention.wk_latent, attention.wv_latent


def _revision(root: Path) -> str:
    """A stable id of the weights: their headers (names, shapes, dtypes) plus samples of the bytes.

    Reading all 6 GB on every container start would cost seconds; headers and 16 spread 64 KiB samples
    per file change whenever the checkpoint does.
    """
    digest = hashlib.sha256()
    for name in (*WEIGHT_FILES, CONFIG):
        path = root / name
        if not path.exists():
            continue
        size = path.stat().st_size
        digest.update(f"{name}:{size}\n".encode())
        with path.open("rb") as f:
            for i in range(17):
                f.seek(size * i // 17)
                digest.update(f.read(65536))
    return "echo-" + digest.hexdigest()[:16]


class EchoEngine:
    def __init__(
        self,
        model: EchoDiT,
        fish_ae: DAC,
        pca: echo.PCAState,
        revision: str,
        config: dict[str, Any],
    ) -> None:
        self.model, self.fish_ae, self.pca = model, fish_ae, pca
        self.revision = revision
        self.config = config
        self.forward_passes = 0  # DiT calls made: what batching saves, counted for benchmarks and tests
        self.shapes: FixedShapes | None = None  # pad every call to these (the fast path needs it)
        self.graphs: CudaGraphs | None = None
        self.blockwise = hasattr(model, "latent_encoder")  # can sample after a latent prefix
        self.watermarker: Watermarker | None = None  # `from_dir` loads one: every output is marked

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        *,
        blockwise: bool = True,
        watermark: bool = True,
    ) -> EchoEngine:
        """Load a weights directory. `dtype` is the DiT's: default bf16 on CUDA, float32 on CPU.

        The DAC and PCA stay float32: they are a small share of the time and bf16 audibly hurts them.
        `blockwise=False` drops the latent-prefix modules: only the whole plan can run then.
        `watermark=False` leaves the output unmarked (`modal_tts.watermark`; benchmarks compare the two).
        """
        root = Path(path)
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise WeightsError(f"Weights directory {root} {what}.")
        echo_cfg, dac_cfg = _read_config(root)
        with torch.device("meta"):
            model = EchoDiT(**echo_cfg)
            fish_ae = build_dac(dac_cfg)
        _assign_state(model, _load_state(root, ECHO_WEIGHTS), root / ECHO_WEIGHTS, blockwise=blockwise)
        if not blockwise:
            _drop_blockwise(model)
        _assign_state(fish_ae, _load_state(root, DAC_WEIGHTS), root / DAC_WEIGHTS)
        fold_weight_norm(fish_ae)
        pca_raw = _load_state(root, PCA_STATE)
        try:
            pca = echo.PCAState(
                pca_components=pca_raw["pca_components"].float(),
                pca_mean=pca_raw["pca_mean"].float(),
                latent_scale=float(pca_raw["latent_scale"].item()),
            )
        except KeyError as exc:
            raise WeightsError(f"Weights file {root / PCA_STATE} lacks {exc}.") from exc
        dac_dim = fish_ae.latent_dim
        if tuple(pca.pca_components.shape) != (echo_cfg["latent_size"], dac_dim):
            raise WeightsError(
                f"Weights file {root / PCA_STATE} maps {tuple(pca.pca_components.shape)}, but the "
                f"model needs ({echo_cfg['latent_size']}, {dac_dim})."
            )
        engine = cls(model.eval(), fish_ae.eval(), pca, _revision(root), {"echo": echo_cfg, "dac": dac_cfg})
        engine.blockwise = blockwise
        if watermark:
            from modal_tts.watermark import Watermarker

            engine.watermarker = Watermarker()
        return engine.to(device, dtype)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> EchoEngine:
        """Move to `device` (e.g. after a CPU-side memory snapshot is restored onto a GPU)."""
        device = torch.device(device)
        if device.type == "cpu":
            # oneDNN plans a conv kernel per input length and every chunk has a new length: planning
            # cost 6.7 s per decode on the tiny DAC against 0.4 s for plain ATen convolutions.
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # torch's own setter
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.model = self.model.to(device=device, dtype=dtype)
        self.fish_ae = self.fish_ae.to(device=device, dtype=torch.float32)
        self.pca = echo.PCAState(
            pca_components=self.pca.pca_components.to(device),
            pca_mean=self.pca.pca_mean.to(device),
            latent_scale=self.pca.latent_scale,
        )
        if self.watermarker is not None:
            self.watermarker.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.device

    def info(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "device": str(self.device),
            "device_name": (torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "fast_path": getattr(self, "fast_path", {"fast_path": "off"}),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dac_parameters": sum(p.numel() for p in self.fish_ae.parameters()),
            "versions": {
                "torch": torch.__version__,
                "echo-tts": metadata.version("echo-tts"),
            },
        }

    # --- the fast path (CUDA) ---------------------------------------------------------------------

    def use_fixed_shapes(self, shapes: FixedShapes | None) -> None:
        """Pad every sampler call to `shapes` (what CUDA graphs replay); None: exact shapes again."""
        self.shapes = shapes

    @torch.inference_mode()
    def enable_fast_path(
        self,
        max_batch: int = BATCH_SIZES[-1],
        capture: Capture | None = None,
        shapes: FixedShapes | None = None,
    ) -> dict[str, Any]:
        """Capture CUDA graphs for every (batch, window) and every block of the low-latency plan (live
        speech, where the first block's latency is what listeners wait for), check them against eager, use
        them if they match. Returns what happened, for `info()` and the benchmark. `capture`: how a
        graph is recorded (CUDA's, unless a test replays eagerly on a CPU); `shapes`: what calls are
        padded to (default: the batch sizes up to `max_batch`, and the longest text and reference)."""
        if self.device.type != "cuda" and capture is None:
            return {"fast_path": "off", "why": "CUDA only"}
        shapes = shapes or FixedShapes(batch_sizes=tuple(b for b in BATCH_SIZES if b <= max_batch) or (1,))
        blocks = plans.block_shapes(plans.LOW_LATENCY, BUCKETS) if self.blockwise else []
        try:
            graphs = CudaGraphs(self.model, shapes, blocks=blocks, capture=capture or cuda_capture)
            return self._capture_fast_path(shapes, graphs)
        except Exception as exc:  # eager is slow, never down: a capture problem must not stop a container
            self.graphs = None
            self.use_fixed_shapes(None)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return {"fast_path": "off", "why": f"capture failed: {type(exc).__name__}: {exc}"}

    def _capture_fast_path(self, shapes: FixedShapes, graphs: CudaGraphs) -> dict[str, Any]:
        self.use_fixed_shapes(shapes)
        seconds = graphs.capture()
        # Check one plain and one CFG graph on a real context: a short text in a short voice.
        probe = Row("[S1] Hello there.", np.zeros((64, LATENT_SIZE), np.float16), 0)
        text_ids, text_mask = self._text_batch([probe.text])
        speaker, speaker_mask = self._speaker_batch([probe.latent])
        kv_text = self.model.get_kv_cache_text(text_ids, text_mask)
        kv_speaker = self.model.get_kv_cache_speaker(speaker.to(self.model.dtype))
        graphs.load(
            torch.cat([text_mask] * 3),
            torch.cat([speaker_mask] * 3),
            echo._concat_kv_caches(kv_text, kv_text, kv_text),
            echo._concat_kv_caches(kv_speaker, kv_speaker, kv_speaker),
        )
        errors = {
            f"{rows}x{window}": graphs.matches_eager(rows, window) for rows, window in ((1, 160), (3, 160))
        }
        if graphs.has(32):  # a second block, after a prefix of 32 latents
            prefix = torch.zeros((1, 32, LATENT_SIZE), device=self.device, dtype=self.model.dtype)
            kv_latent = self.model.get_kv_cache_latent(prefix)
            graphs.load_prefix(32, echo._concat_kv_caches(kv_latent, kv_latent, kv_latent))
            for rows in (1, 3):
                errors[f"{rows}x128@32"] = graphs.matches_eager(rows, 128, 32)
        if max(errors.values()) > MATCH_TOLERANCE:
            self.use_fixed_shapes(None)
            return {"fast_path": "off", "why": f"graphs differ from eager: {errors}", "capture_s": seconds}
        self.graphs = graphs
        self.fast_path = {
            "fast_path": "cuda-graphs",
            "capture_s": round(seconds, 2),
            "graphs": len(graphs.graphs),
        }
        return {**self.fast_path, "relative_error": errors}

    def _text_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        length = self.shapes.text_tokens if self.shapes else None
        ids, mask = echo.get_text_input_ids_and_mask(list(texts), max_length=length, normalize=True)[:2]
        return ids.to(self.device), mask.to(self.device)

    def _forward(self, graphs: CudaGraphs | None, **inputs: Any) -> torch.Tensor:
        self.forward_passes += 1
        if graphs is not None:
            out = graphs.forward(inputs["x"], inputs["t"], inputs.get("start_pos", 0))
            if out is not None:
                return out
        return self.model(**inputs)

    # --- speaker ------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode_speaker(self, pcm: np.ndarray) -> np.ndarray:
        """Reference audio (float32 mono 44.1 kHz) → speaker latent, float16 [T, 80].

        T is a multiple of the speaker patch size and at most 6400 (≈297 s; longer audio is cut).
        """
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 1 or not np.isfinite(pcm).all():
            raise InvalidParams("Reference audio must be finite mono samples.")
        if pcm.size < SAMPLES_PER_LATENT * SPEAKER_PATCH_SIZE:
            raise InvalidParams(
                f"Reference audio is {pcm.size / SAMPLE_RATE:.2f} s; the engine needs at least "
                f"{SAMPLES_PER_LATENT * SPEAKER_PATCH_SIZE / SAMPLE_RATE:.2f} s."
            )
        audio = torch.from_numpy(pcm)[None]
        # Same scaling as echo's load_audio: only ever turn the level down.
        audio = audio / torch.clamp(audio.abs().max(), min=1.0)
        latent, _ = echo.get_speaker_latent_and_mask(
            self.fish_ae,
            self.pca,
            audio.to(self.device, self.fish_ae.dtype),
            max_speaker_latent_length=MAX_SPEAKER_LATENT_LENGTH,
            divis_by_patch_size=SPEAKER_PATCH_SIZE,
        )
        return latent[0].to(torch.float16).cpu().numpy()

    # --- speech -------------------------------------------------------------------------------

    def synthesize(
        self, texts: Sequence[str], latent: np.ndarray, params: SynthesisParams, seed: int
    ) -> list[np.ndarray]:
        """Speak every text in the voice of `latent`: one float32 44.1 kHz array per text."""
        return [audio for _, audio in self.synthesize_iter(texts, latent, params, seed)]

    def synthesize_iter(
        self, texts: Sequence[str], latent: np.ndarray, params: SynthesisParams, seed: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """As `synthesize`, yielding (index, audio) in order as each chunk is decoded, scheduled as the
        GPU scheduler would (windows sized to each text unless `params.sequence_length` is set)."""
        for chunk in run_inline(self, texts, latent, params, seed):
            yield chunk.index, chunk.audio

    def synthesize_rows(
        self, rows: Sequence[Row], params: SynthesisParams
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Sample rows of one window in one batched call, then decode, watermark and yield them one by one."""
        window = params.sequence_length or MAX_SEQUENCE_LENGTH
        latents = self.sample_rows(rows, params, window)
        for i in range(len(rows)):
            yield i, self.watermark(self.decode(latents, i, self.end_of_speech(latents, i)))

    # --- the scheduler's interface (modal_tts.scheduler.Engine) ---------------------------------------

    def sample_rows(
        self,
        rows: Sequence[Row],
        params: SynthesisParams,
        window: int,
        *,
        start: int = 0,
        steps: int | None = None,
        prefixes: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Every row in one batched sampler call over `window` latents: [rows, window, 80].

        A block after the first (`start` > 0) attends to each row's latents so far, `prefixes[i]`
        ([1, start, 80], as `extend` returns them), and takes `steps` Euler steps if given.
        """
        check_texts([r.text for r in rows])
        for r in rows:
            check_seed(r.seed)
        count = len(rows)
        prefix = None
        if start:
            if not self.blockwise:
                raise InvalidParams(
                    "This engine was loaded without the blockwise modules; use the whole plan."
                )
            if prefixes is None or len(prefixes) != count or any(p.shape[1] != start for p in prefixes):
                raise ValueError(f"each row needs its {start} latents so far")
            prefix = torch.cat(list(prefixes)).to(self.device)
        if self.shapes is not None:  # pad to a captured batch size; spare rows repeat the first
            spare = self.shapes.rows_for(count) - count
            rows = [*rows, *[rows[0]] * spare]
            if prefix is not None:
                prefix = torch.cat([prefix, prefix[:1].expand(spare, -1, -1)])
        speaker, speaker_mask = self._speaker_batch([r.latent for r in rows])
        settings = params if steps is None else replace(params, steps=steps)
        return self._sample(rows, speaker, speaker_mask, settings, window, start, prefix)[:count]

    def extend(self, prefix: torch.Tensor | None, latents: torch.Tensor, index: int) -> torch.Tensor:
        """Row `index`'s latents so far, [1, T, 80]: its `prefix` (None before the first block) and the
        block just sampled."""
        block = latents[index : index + 1]
        return block if prefix is None else torch.cat([prefix.to(block.device), block], dim=1)

    def end_of_speech(self, latents: torch.Tensor, index: int) -> int:
        """Latents of speech in row `index` before it flattens out (the window's length if it never does)."""
        # A row that is "flat" from the start still yields one frame, not nothing.
        return max(echo.find_flattening_point(latents[index].float().cpu()), 1)

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, index: int, end: int) -> np.ndarray:
        """Row `index` up to `end` as float32 44.1 kHz audio. The DAC decoder is causal, so the prefix
        decodes to the same audio as echo's decode-then-crop, at a fraction of the cost."""
        decoded = echo.ae_decode(self.fish_ae, self.pca, latents[index : index + 1, :end])
        audio = decoded[0, 0, : end * SAMPLES_PER_LATENT].float().cpu().numpy()
        return np.ascontiguousarray(audio, dtype=np.float32)

    def watermark(self, audio: np.ndarray, heard: int = 0) -> np.ndarray:
        """`audio[heard:]` with the watermark added (`modal_tts.watermark.Watermarker.mark`); unchanged
        when the engine was loaded without one."""
        if self.watermarker is None:
            return np.asarray(audio, dtype=np.float32)[heard:]
        return self.watermarker.mark(audio, heard)

    def watermark_confidence(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
        """How surely `audio` carries the watermark, 0..1 (`modal_tts.watermark.THRESHOLD` decides)."""
        if self.watermarker is None:
            raise RuntimeError("This engine was loaded without its watermarker (watermark=False).")
        return self.watermarker.confidence(audio, sample_rate)

    def _speaker_batch(self, latents: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        for latent in latents:
            check_latent(latent)
        longest = max(latent.shape[0] for latent in latents)
        if self.shapes is not None:
            longest = max(longest, self.shapes.speaker_latents)
        speaker = torch.zeros((len(latents), longest, LATENT_SIZE), dtype=torch.float32)
        mask = torch.zeros((len(latents), longest), dtype=torch.bool)
        for i, latent in enumerate(latents):
            speaker[i, : latent.shape[0]] = torch.from_numpy(latent.astype(np.float32))
            mask[i, : latent.shape[0]] = True
        return speaker.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def _sample(
        self,
        rows: Sequence[Row],
        speaker_latent: torch.Tensor,
        speaker_mask: torch.Tensor,
        p: SynthesisParams,
        window: int,
        start: int = 0,
        prefix: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Echo's Euler sampler with independent text/speaker CFG, per-row initial noise.

        Mirrors `echo_tts.inference.sample_euler_cfg_independent_guidances` step for step (a test holds
        the two to the same output); the only change is where the noise comes from. With a `prefix`
        ([rows, start, 80]) it samples the block at positions `start`… attending to the prefix through
        the latent KV cache, as echo's published blockwise sampler does; without one it is the plain
        sampler exactly (the whole plan's output is today's).
        """
        model, device, dtype = self.model, self.device, self.model.dtype
        batch = len(rows)
        text_ids, text_mask = self._text_batch([r.text for r in rows])
        # CPU generators, so a seed gives the same noise on every device.
        noise = torch.stack(
            [
                torch.randn((window, LATENT_SIZE), generator=torch.Generator().manual_seed(r.seed))
                for r in rows
            ]
        )
        x_t = noise.to(device)
        if p.truncation_factor is not None:
            x_t = x_t * p.truncation_factor

        schedule = (torch.linspace(1.0, 0.0, p.steps + 1) * 0.999).tolist()
        kv_text = model.get_kv_cache_text(text_ids, text_mask)
        kv_speaker = model.get_kv_cache_speaker(speaker_latent.to(dtype))
        if p.speaker_kv_scale is not None:
            echo._multiply_kv_cache(kv_speaker, p.speaker_kv_scale, p.speaker_kv_max_layers)
        kv_text_3 = echo._concat_kv_caches(kv_text, kv_text, kv_text)
        kv_speaker_3 = echo._concat_kv_caches(kv_speaker, kv_speaker, kv_speaker)
        text_mask_3 = torch.cat([text_mask, torch.zeros_like(text_mask), text_mask])
        speaker_mask_3 = torch.cat([speaker_mask, speaker_mask, torch.zeros_like(speaker_mask)])
        # The prefix's keys and values: the same for every step, and for the CFG copies (none of them
        # masks the audio so far).
        blocks: dict[str, Any] = {}
        if prefix is not None:
            kv_latent = model.get_kv_cache_latent(prefix.to(dtype))
            blocks = {
                "start_pos": start,
                "kv_latent": kv_latent,
                "kv_latent_3": echo._concat_kv_caches(kv_latent, kv_latent, kv_latent),
            }
        # Graphs exist for the captured batch sizes, windows and block starts; the rest runs eager.
        graphs = self.graphs if self.graphs is not None and batch in self.graphs.shapes.batch_sizes else None
        if graphs is not None and not graphs.has(start):
            graphs = None
        if graphs is not None:
            graphs.load(text_mask_3, speaker_mask_3, kv_text_3, kv_speaker_3)
            if blocks:
                graphs.load_prefix(start, blocks["kv_latent_3"])

        for t, t_next in itertools.pairwise(schedule):
            if p.cfg_min_t <= t <= p.cfg_max_t:
                v_cond, v_text_off, v_speaker_off = (
                    self._forward(
                        graphs,
                        x=torch.cat([x_t, x_t, x_t]).to(dtype),
                        t=torch.full((batch * 3,), t, device=device).to(dtype),
                        text_mask=text_mask_3,
                        speaker_mask=speaker_mask_3,
                        kv_cache_text=kv_text_3,
                        kv_cache_speaker=kv_speaker_3,
                        **_latent_inputs(blocks, 3),
                    )
                    .float()
                    .chunk(3, dim=0)
                )
                v_pred = (
                    v_cond
                    + p.cfg_scale_text * (v_cond - v_text_off)
                    + p.cfg_scale_speaker * (v_cond - v_speaker_off)
                )
            else:
                v_pred = self._forward(
                    graphs,
                    x=x_t.to(dtype),
                    t=torch.full((batch,), t, device=device).to(dtype),
                    text_mask=text_mask,
                    speaker_mask=speaker_mask,
                    kv_cache_text=kv_text,
                    kv_cache_speaker=kv_speaker,
                    **_latent_inputs(blocks, 1),
                ).float()
            if p.rescale_k is not None and p.rescale_sigma is not None:
                v_pred = echo._temporal_score_rescale(v_pred, x_t, t, p.rescale_k, p.rescale_sigma)
            if (
                p.speaker_kv_scale is not None
                and p.speaker_kv_min_t is not None
                and t_next < p.speaker_kv_min_t <= t
            ):
                echo._multiply_kv_cache(kv_speaker, 1.0 / p.speaker_kv_scale, p.speaker_kv_max_layers)
                kv_speaker_3 = echo._concat_kv_caches(kv_speaker, kv_speaker, kv_speaker)
                if graphs is not None:
                    graphs.load(text_mask_3, speaker_mask_3, kv_text_3, kv_speaker_3)
            x_t = x_t + v_pred * (t_next - t)
        return x_t


def _latent_inputs(blocks: dict[str, Any], copies: int) -> dict[str, Any]:
    """The forward's prefix arguments for a block after the first (nothing for a first block, so that
    its call is exactly the plain sampler's)."""
    if not blocks:
        return {}
    kv = blocks["kv_latent_3"] if copies == 3 else blocks["kv_latent"]
    return {"start_pos": blocks["start_pos"], "kv_cache_latent": kv}


def weights_present(path: str | Path) -> bool:
    return not missing_weight_files(Path(path))
