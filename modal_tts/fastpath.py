"""The GPU fast path: the DiT's forward pass replayed from CUDA graphs, one per (rows, window, start).

Why: eager PyTorch launches ~7,000 kernels per forward pass, and at short windows the GPU waits on the
launches (measured on an H200: a 160-latent chunk took 2.0–2.5 s eager, no faster than 640; 0.27 s
compiled). A CUDA graph replays every kernel of a forward in one launch.

Why graphs rather than `torch.compile`: compiling took 111–132 s per shape, which a cold start can't pay
and which must then be cached per torch/GPU version; capturing a graph costs three forward passes, so
the whole set (5 windows × 4 batch sizes × plain and CFG) is captured at container start in seconds,
with nothing to persist. Compile's kernel fusion gains more at the full window; that is left for when a
GPU run shows the graphs' figures (`python -m modal_tts.bench --gpu`).

Fixed shapes: a graph replays fixed tensor shapes, so rows are padded to a batch size in
`BATCH_SIZES` (spare rows repeat the first and are dropped), text to `TEXT_TOKENS` and the speaker
latent to `SPEAKER_LATENTS`, with masks. Padding changes nothing but float rounding: text and speaker
padding is masked out of attention, the speaker encoder is causal, and rows never mix. A test holds
padded and unpadded sampling to the same output on the CPU; at capture, each graph's output is checked
against the eager forward within bf16 tolerance, and a mismatch turns the fast path off (eager is slow,
never wrong).

Memory: one set of static inputs sized for the largest batch serves every graph (smaller batches use
its first rows), and all graphs share one memory pool: they run one at a time on the GPU thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from echo_tts import model as echo_model

from modal_tts.windows import BUCKETS

log = logging.getLogger(__name__)

BATCH_SIZES = (1, 2, 4, 8)
TEXT_TOKENS = 768  # Echo's whole text window: 767 bytes and its BOS
SPEAKER_LATENTS = 6400  # the longest reference, ≈ 297 s
CFG_COPIES = 3  # CFG steps run conditional, text-off and speaker-off rows together
MATCH_TOLERANCE = 3e-2  # relative: what bf16 rounding across different kernel schedules can move


@dataclass(frozen=True)
class FixedShapes:
    """The shapes every sampler call is padded to, so that captured graphs can replay it."""

    batch_sizes: tuple[int, ...] = BATCH_SIZES
    text_tokens: int = TEXT_TOKENS
    speaker_latents: int = SPEAKER_LATENTS

    def rows_for(self, rows: int) -> int:
        """The batch size `rows` are padded to (the largest, if more: callers split batches at it)."""
        return next((size for size in self.batch_sizes if size >= rows), self.batch_sizes[-1])


def place_positional_tables_on(device: torch.device) -> None:
    """echo_tts builds its rotary and timestep tables on the CPU inside every forward and copies them
    over, which a CUDA graph can't capture; give it the same tables, built once on `device`."""
    original_freqs = getattr(echo_model, "_cpu_precompute_freqs_cis", echo_model.precompute_freqs_cis)
    echo_model._cpu_precompute_freqs_cis = original_freqs  # type: ignore[attr-defined]
    freqs_cache: dict[tuple[int, int, float], torch.Tensor] = {}
    timestep_cache: dict[int, torch.Tensor] = {}

    def precompute_freqs_cis(dim: int, end: int, theta: float = 10000.0) -> torch.Tensor:
        key = (dim, end, theta)
        if key not in freqs_cache:
            freqs_cache[key] = original_freqs(dim, end, theta).to(device)
        return freqs_cache[key]

    def get_timestep_embedding(timestep: torch.Tensor, embed_size: int) -> torch.Tensor:
        assert embed_size % 2 == 0
        if embed_size not in timestep_cache:
            half = embed_size // 2
            freqs = 1000 * torch.exp(
                -torch.log(torch.tensor(10000.0))
                * torch.arange(start=0, end=half, dtype=torch.float32)
                / half
            )
            timestep_cache[embed_size] = freqs.to(device)
        args = timestep[..., None] * timestep_cache[embed_size][None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(timestep.dtype)

    echo_model.precompute_freqs_cis = precompute_freqs_cis
    echo_model.get_timestep_embedding = get_timestep_embedding


class Context:
    """Static inputs for one batch: masks and KV caches in the CFG (3×) layout. The plain steps use its
    first rows, which hold exactly the plain step's inputs (conditional first, as the sampler lays them).
    A block after the first also attends to the latents before it: one latent-prefix cache per block start
    (`starts`), as long as that prefix."""

    def __init__(
        self,
        model: Any,
        shapes: FixedShapes,
        dtype: torch.dtype,
        device: torch.device,
        starts: Sequence[int] = (),
    ) -> None:
        rows = CFG_COPIES * shapes.batch_sizes[-1]
        patch = model.speaker_patch_size
        heads, dim = model.blocks[0].attention.num_heads, model.head_dim

        def kv(length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [
                (
                    torch.zeros((rows, length, heads, dim), dtype=dtype, device=device),
                    torch.zeros((rows, length, heads, dim), dtype=dtype, device=device),
                )
                for _ in model.blocks
            ]

        self.text_mask = torch.zeros((rows, shapes.text_tokens), dtype=torch.bool, device=device)
        self.speaker_mask = torch.zeros((rows, shapes.speaker_latents), dtype=torch.bool, device=device)
        self.kv_text, self.kv_speaker = kv(shapes.text_tokens), kv(shapes.speaker_latents // patch)
        self.kv_latent = {start: kv(start // patch) for start in starts if start}

    def load_prefix(self, start: int, kv_latent: Any) -> None:
        n = kv_latent[0][0].shape[0]
        for (k, v), (k_in, v_in) in zip(self.kv_latent[start], kv_latent, strict=True):
            k[:n].copy_(k_in)
            v[:n].copy_(v_in)

    def load(
        self, text_mask: torch.Tensor, speaker_mask: torch.Tensor, kv_text: Any, kv_speaker: Any
    ) -> None:
        n = text_mask.shape[0]
        self.text_mask[:n].copy_(text_mask)
        self.speaker_mask[:n].copy_(speaker_mask)
        for (k, v), (k_in, v_in) in zip(self.kv_text, kv_text, strict=True):
            k[:n].copy_(k_in)
            v[:n].copy_(v_in)
        for (k, v), (k_in, v_in) in zip(self.kv_speaker, kv_speaker, strict=True):
            k[:n].copy_(k_in)
            v[:n].copy_(v_in)

    def view(self, rows: int, start: int = 0) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "text_mask": self.text_mask[:rows],
            "speaker_mask": self.speaker_mask[:rows],
            "kv_cache_text": [(k[:rows], v[:rows]) for k, v in self.kv_text],
            "kv_cache_speaker": [(k[:rows], v[:rows]) for k, v in self.kv_speaker],
        }
        if start:
            inputs["start_pos"] = start
            inputs["kv_cache_latent"] = [(k[:rows], v[:rows]) for k, v in self.kv_latent[start]]
        return inputs


# (run the forward pass on the static inputs) -> (replay it, its static output)
Capture = Callable[[Callable[[], torch.Tensor], Any], tuple[Callable[[], None], torch.Tensor]]


def cuda_capture(forward: Callable[[], torch.Tensor], pool: Any) -> tuple[Callable[[], None], torch.Tensor]:
    """Record `forward` as a CUDA graph in `pool`: replaying it reruns every kernel in one launch."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(2):  # warm-up: cuBLAS handles and workspaces exist before capture
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool), torch.inference_mode():
        out = forward()
    return graph.replay, out


class Graph:
    """One captured forward pass for `rows` × `window`, at positions from `start` (a later block)."""

    def __init__(
        self,
        model: Any,
        context: Context,
        rows: int,
        window: int,
        pool: Any,
        capture: Capture,
        start: int = 0,
    ) -> None:
        device, dtype = model.device, model.dtype
        self.x = torch.zeros((rows, window, model.in_proj.in_features), dtype=dtype, device=device)
        self.t = torch.zeros((rows,), dtype=dtype, device=device)
        inputs = context.view(rows, start)
        self.replay, self.out = capture(lambda: model(x=self.x, t=self.t, **inputs), pool)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.t.copy_(t)
        self.replay()
        return self.out.clone()  # the next replay (of any graph in the pool) overwrites it


class CudaGraphs:
    """Every (rows, window, start) graph of one model, over one shared `Context`: the whole plan's
    windows (`windows`, from the first latent) and the blocks of the plans in `blocks` (`(start, size)`,
    `modal_tts.plans.block_shapes`). `capture` is `cuda_capture`; a test can replay eagerly on a CPU."""

    def __init__(
        self,
        model: Any,
        shapes: FixedShapes,
        windows: Sequence[int] = BUCKETS,
        blocks: Sequence[tuple[int, int]] = (),
        capture: Capture = cuda_capture,
    ) -> None:
        self.model, self.shapes = model, shapes
        self.sizes = sorted({(0, w) for w in windows} | set(blocks), key=lambda s: (-s[1], s[0]))
        self._capture = capture
        self.context: Context | None = None
        self.graphs: dict[tuple[int, int, int], Graph] = {}

    def capture(self) -> float:
        """Capture all graphs; seconds taken."""
        started = time.perf_counter()
        device = self.model.device
        place_positional_tables_on(device)
        starts = sorted({start for start, _ in self.sizes})
        self.context = Context(self.model, self.shapes, self.model.dtype, device, starts)
        pool = torch.cuda.graph_pool_handle() if device.type == "cuda" else None
        # Largest first: the shared pool is sized by the biggest graph, the rest fit inside it.
        for start, window in self.sizes:
            for batch in sorted(self.shapes.batch_sizes, reverse=True):
                for rows in (CFG_COPIES * batch, batch):
                    self.graphs[(rows, window, start)] = Graph(
                        self.model, self.context, rows, window, pool, self._capture, start
                    )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def forward(self, x: torch.Tensor, t: torch.Tensor, start: int = 0) -> torch.Tensor | None:
        """The graphed forward pass for `x`'s shape at `start`, or None when no graph has it (run eager)."""
        graph = self.graphs.get((x.shape[0], x.shape[1], start))
        return None if graph is None else graph(x, t)

    def has(self, start: int) -> bool:
        return self.context is not None and (not start or start in self.context.kv_latent)

    def load(
        self, text_mask: torch.Tensor, speaker_mask: torch.Tensor, kv_text: Any, kv_speaker: Any
    ) -> None:
        assert self.context is not None, "capture() first"
        self.context.load(text_mask, speaker_mask, kv_text, kv_speaker)

    def load_prefix(self, start: int, kv_latent: Any) -> None:
        """The latent-prefix cache of a block at `start` (CFG layout), for the graphs at that start."""
        assert self.context is not None, "capture() first"
        self.context.load_prefix(start, kv_latent)

    def matches_eager(self, rows: int, window: int, start: int = 0) -> float:
        """Relative difference between a graph's output and the eager forward on the same inputs."""
        assert self.context is not None, "capture() first"
        generator = torch.Generator(device=self.model.device).manual_seed(0)
        x = torch.randn(
            (rows, window, self.model.in_proj.in_features), generator=generator, device=self.model.device
        )
        x = x.to(self.model.dtype)
        t = torch.full((rows,), 0.7, device=self.model.device, dtype=self.model.dtype)
        graphed = self.graphs[(rows, window, start)](x, t).float()
        with torch.inference_mode():
            eager = self.model(x=x, t=t, **self.context.view(rows, start)).float()
        return float((graphed - eager).norm() / eager.norm().clamp(min=1e-6))
