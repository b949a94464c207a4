"""Block plans: how a chunk's latents are sampled, all at once or in blocks that can be heard one by one.

Echo samples a chunk's whole window in one go: nothing can play before all of it exists. Its released
checkpoint also carries latent-prefix modules (`latent_encoder`, `wk_latent`/`wv_latent`), so a block can
be sampled after the latents before it, attending to them as a prefix. The S1-DAC decoder is causal, so
each block can be decoded and played as soon as it exists (`EchoEngine` does both).

A plan is a list of (block size in latents, Euler steps; None = the request's steps). Named plans:

- `whole`: one block, the chunk's window sized to its text (`modal_tts.windows`): exactly today's sampler
  and output, and the model's trained mode. Files use it: a file waits for the whole text anyway, and
  the author's README says blockwise generation "hasn't been thoroughly tested".
- `low-latency`: 32 latents (≈1.5 s) in 8 steps, then 128 in 15, then 480 in 20: the first sound costs a
  sliver of a whole window, and each later block is ready before the one before it has played. Live voice
  and auto-read use it.
- `even`: three blocks of about 10 s at the request's steps, for long chunks where steadier quality per
  block matters more than the first second.

A plan's blocks are cut to the chunk: they stop at the chunk's cap (the most latents its text can
plausibly need, `windows.largest_window`, or the window asked for), the last one shortened to end there,
so "Hello." never pays for a 480-latent block; and sampling stops early once speech has ended
(`speech_ended`).

Torch-free: the bot names plans with the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modal_tts import windows
from modal_tts.params import BLOCK_PLANS, SPEAKER_PATCH_SIZE

# echo's flattening test: a window of this many latents, flat and near zero, is the end of speech.
FLAT_WINDOW = 20
WHOLE, LOW_LATENCY, EVEN = BLOCK_PLANS


@dataclass(frozen=True)
class Block:
    """One sampler pass of a chunk: `size` latents starting at latent `start`, in `steps` Euler steps."""

    index: int
    start: int
    size: int
    steps: int

    @property
    def end(self) -> int:
        return self.start + self.size


# name -> blocks as (size, steps or None); empty: one block of the chunk's own window.
PLANS: dict[str, tuple[tuple[int, int | None], ...]] = {
    WHOLE: (),
    LOW_LATENCY: ((32, 8), (128, 15), (480, 20)),
    EVEN: ((216, None), (212, None), (212, None)),
}


def blocks_for(plan: str, text: str, steps: int, sequence_length: int | None = None) -> list[Block]:
    """The blocks a chunk of `text` is sampled in under `plan`.

    `sequence_length` (a fixed window asked for) is both the whole plan's window and the cap of a
    blockwise one; otherwise the whole plan uses the text's window and a blockwise plan stops at the
    text's largest plausible window.
    """
    shape = PLANS[plan]
    if not shape:
        size = sequence_length or windows.window_for(text)
        return [Block(0, 0, size, steps)]
    # The last block ends at the cap: a chunk is never longer than its largest window, which is what a
    # quota reserves for it (`windows.largest_window`).
    cap = sequence_length or windows.largest_window(text)
    blocks: list[Block] = []
    start = 0
    for size, block_steps in shape:
        if start >= cap:
            break
        size = min(size, cap - start)
        blocks.append(Block(len(blocks), start, size, block_steps or steps))
        start += size
    return blocks


def block_shapes(plan: str, caps: Sequence[int]) -> list[tuple[int, int]]:
    """Every (start, size) a chunk's block can have under `plan` when its cap is one of `caps` (the
    window buckets): the shapes a CUDA graph is captured for. The whole plan's are the caps themselves."""
    return sorted({(b.start, b.size) for cap in caps for b in blocks_for(plan, "", 0, sequence_length=cap)})


def speech_ended(flattening_point: int, sampled: int) -> bool:
    """Whether speech ended in the `sampled` latents so far: echo's flat window lies wholly inside them.

    echo pads the latents with zeros before looking, so a pause in the last few latents of a block would
    look like the end; a flat window wholly inside what was sampled is the same point echo finds in the
    full window, since no earlier window reaches the padding.
    """
    return flattening_point + FLAT_WINDOW <= sampled


def audible_until(flattening_point: int, sampled: int, last_block: bool) -> int:
    """Latents that can be played now: up to the end of speech once it is known (or at the last block);
    otherwise up to where the tail might be turning flat, which the next block decides."""
    if last_block or speech_ended(flattening_point, sampled):
        return max(flattening_point, 1)
    return flattening_point


def block_seed(seed: int, block: int, attempt: int = 0) -> int:
    """The noise seed of block `block` of a chunk whose seed is `seed`: block 0 keeps the chunk's seed (so
    the whole plan is today's sampler); later blocks and re-samples get seeds of their own."""
    if block == 0 and attempt == 0:
        return seed
    mixed = (seed * 0x9E3779B97F4A7C15 + block * 0xBF58476D1CE4E5B9 + attempt * 0x94D049BB133111EB) & (
        2**64 - 1
    )
    mixed ^= mixed >> 31
    return mixed & (2**63 - 1)


assert tuple(PLANS) == BLOCK_PLANS
assert all(size % SPEAKER_PATCH_SIZE == 0 for shape in PLANS.values() for size, _ in shape)
