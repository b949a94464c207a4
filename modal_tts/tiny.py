"""Write a tiny random-weight Echo model: `python -m modal_tts.tiny DIR [--seed N]`.

Same classes, same sampler and the same weights layout as the real checkpoints (see `engine.py`); only
the sizes differ, recorded in DIR/config.json. It speaks noise, not words, but it runs every line of the
real pipeline on a CPU in seconds, which is what tests, CI and `voicebot` trials without a GPU need.
The files depend only on the seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modal_tts.params import LATENT_SIZE, MAX_SEQUENCE_LENGTH, SPEAKER_PATCH_SIZE
from modal_tts.prerequisites import CONFIG, DAC_WEIGHTS, ECHO_WEIGHTS, PCA_STATE, engine_imports

with engine_imports("python -m modal_tts.tiny"):
    import safetensors.torch
    import torch
    from echo_tts.model import EchoDiT

    from modal_tts.engine import _is_blockwise, build_dac

TINY_ECHO: dict[str, Any] = dict(
    latent_size=LATENT_SIZE,
    model_size=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=128,
    norm_eps=1e-5,
    text_vocab_size=256,
    text_model_size=32,
    text_num_layers=1,
    text_num_heads=2,
    text_intermediate_size=64,
    speaker_patch_size=SPEAKER_PATCH_SIZE,
    speaker_model_size=32,
    speaker_num_layers=1,
    speaker_num_heads=2,
    speaker_intermediate_size=64,
    timestep_embed_size=32,
    adaln_rank=8,
)

# The real DAC's strides (2048 samples per latent) with narrow channels and one small transformer in
# the quantizer; the RoPE/causal-mask buffers sized to a 30 s chunk instead of 16k frames.
TINY_DAC: dict[str, Any] = dict(
    encoder_dim=4,
    encoder_rates=[2, 4, 8, 8],
    latent_dim=128,
    decoder_dim=32,
    decoder_rates=[8, 8, 4, 2],
    encoder_transformer_layers=[0, 0, 0, 0],
    decoder_transformer_layers=[0, 0, 0, 0],
    quantizer=dict(
        n_codebooks=2, codebook_size=32, codebook_dim=8, semantic_codebook_size=64, downsample_factor=[2, 2]
    ),
    quantizer_transformer=dict(
        block_size=MAX_SEQUENCE_LENGTH,
        n_layer=1,
        n_head=2,
        dim=64,
        intermediate_size=128,
        head_dim=32,
        window_size=128,
    ),
)


def write_tiny_model(directory: str | Path, seed: int = 0) -> Path:
    """Create DIR/{echo,dac}/… and DIR/config.json; returns DIR."""
    root = Path(directory)
    (root / "echo").mkdir(parents=True, exist_ok=True)
    (root / "dac").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = EchoDiT(**TINY_ECHO).eval()
    # Random adaLN gates are near zero at init, which would make every block a no-op; widen the
    # output projection so the tiny model's velocity actually depends on its inputs.
    torch.nn.init.normal_(model.out_proj.weight, std=0.5)
    fish_ae = build_dac(TINY_DAC).eval()

    # The blockwise (latent-prefix) tensors the real checkpoint carries: block plans need them.
    echo_state = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(_is_blockwise(k) for k in echo_state)
    safetensors.torch.save_file(echo_state, str(root / ECHO_WEIGHTS))
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in fish_ae.state_dict().items()}, str(root / DAC_WEIGHTS)
    )
    # Orthonormal rows: the PCA of the real model projects DAC latents onto 80 principal directions.
    basis, _ = torch.linalg.qr(torch.randn(fish_ae.latent_dim, LATENT_SIZE))
    safetensors.torch.save_file(
        {
            "pca_components": basis.T.contiguous(),
            "pca_mean": (torch.randn(fish_ae.latent_dim) * 0.01).contiguous(),
            "latent_scale": torch.tensor(1.0),
        },
        str(root / PCA_STATE),
    )
    (root / CONFIG).write_text(json.dumps({"echo": TINY_ECHO, "dac": TINY_DAC}, indent=2) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modal_tts.tiny", description=__doc__.split("\n")[0])
    parser.add_argument("directory", help="where to write the model (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    args = parser.parse_args(argv)
    root = write_tiny_model(args.directory, args.seed)
    print(f"Wrote a tiny random-weight Echo model to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
