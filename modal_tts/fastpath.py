"""The GPU fast path: the DiT's forward pass replayed from CUDA graphs, one per (rows, window).

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
from collections.abc import Sequence
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
    first rows, which hold exactly the plain step's inputs (conditional first, as the sampler lays them)."""

    def __init__(self, model: Any, shapes: FixedShapes, dtype: torch.dtype, device: torch.device) -> None:
        rows = CFG_COPIES * shapes.batch_sizes[-1]
        speaker_len = shapes.speaker_latents // model.speaker_patch_size
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
        self.kv_text, self.kv_speaker = kv(shapes.text_tokens), kv(speaker_len)

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

    def view(self, rows: int) -> dict[str, Any]:
        return {
            "text_mask": self.text_mask[:rows],
            "speaker_mask": self.speaker_mask[:rows],
            "kv_cache_text": [(k[:rows], v[:rows]) for k, v in self.kv_text],
            "kv_cache_speaker": [(k[:rows], v[:rows]) for k, v in self.kv_speaker],
        }


class Graph:
    """One captured forward pass for `rows` × `window`."""

    def __init__(self, model: Any, context: Context, rows: int, window: int, pool: Any) -> None:
        device, dtype = model.device, model.dtype
        self.x = torch.zeros((rows, window, model.in_proj.in_features), dtype=dtype, device=device)
        self.t = torch.zeros((rows,), dtype=dtype, device=device)
        inputs = context.view(rows)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm-up: cuBLAS handles and workspaces exist before capture
                model(x=self.x, t=self.t, **inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool), torch.inference_mode():
            self.out = model(x=self.x, t=self.t, **inputs)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.t.copy_(t)
        self.graph.replay()
        return self.out.clone()  # the next replay (of any graph in the pool) overwrites it


class CudaGraphs:
    """Every (rows, window) graph of one model, over one shared `Context`."""

    def __init__(self, model: Any, shapes: FixedShapes, windows: Sequence[int] = BUCKETS) -> None:
        self.model, self.shapes, self.windows = model, shapes, tuple(windows)
        self.context: Context | None = None
        self.graphs: dict[tuple[int, int], Graph] = {}

    def capture(self) -> float:
        """Capture all graphs; seconds taken."""
        started = time.perf_counter()
        place_positional_tables_on(self.model.device)
        self.context = Context(self.model, self.shapes, self.model.dtype, self.model.device)
        pool = torch.cuda.graph_pool_handle()
        # Largest first: the shared pool is sized by the biggest graph, the rest fit inside it.
        for window in sorted(self.windows, reverse=True):
            for batch in sorted(self.shapes.batch_sizes, reverse=True):
                for rows in (CFG_COPIES * batch, batch):
                    self.graphs[(rows, window)] = Graph(self.model, self.context, rows, window, pool)
        torch.cuda.synchronize()
        return time.perf_counter() - started

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
        """The graphed forward pass for `x`'s shape, or None when no graph has it (run eager)."""
        graph = self.graphs.get((x.shape[0], x.shape[1]))
        return None if graph is None else graph(x, t)

    def load(
        self, text_mask: torch.Tensor, speaker_mask: torch.Tensor, kv_text: Any, kv_speaker: Any
    ) -> None:
        assert self.context is not None, "capture() first"
        self.context.load(text_mask, speaker_mask, kv_text, kv_speaker)

    def matches_eager(self, rows: int, window: int) -> float:
        """Relative difference between a graph's output and the eager forward on the same inputs."""
        assert self.context is not None, "capture() first"
        generator = torch.Generator(device=self.model.device).manual_seed(0)
        x = torch.randn(
            (rows, window, self.model.in_proj.in_features), generator=generator, device=self.model.device
        )
        x = x.to(self.model.dtype)
        t = torch.full((rows,), 0.7, device=self.model.device, dtype=self.model.dtype)
        graphed = self.graphs[(rows, window)](x, t).float()
        with torch.inference_mode():
            eager = self.model(x=x, t=t, **self.context.view(rows)).float()
        return float((graphed - eager).norm() / eager.norm().clamp(min=1e-6))
