"""Echo-TTS on a Modal GPU: `modal deploy modal_tts/app.py`, then the bot calls it by name.

Read top to bottom: the image, the Volume that keeps the 6 GB of weights between containers, a
function that fills it, and the `EchoTTS` class the bot calls.

Wire format (numpy-only helpers in `modal_tts/wire.py`, shared with the bot):

    encode_speaker(pcm: bytes) -> {"latent": bytes, "shape": [T, 80], "revision": str}
        pcm is float32 little-endian mono 44,100 Hz; the latent is float16 little-endian, C order.
    speak(request: {"v": 2, "texts", "latent", "params", "seed", "output": "pcm" | "file", "file"})
        -> output "pcm": yields {"v": 2, "kind": "pcm", "index", "block", "last", "pcm", "sample_rate",
        "gpu_seconds"}, the request's speech piece by piece as each block is decoded;
        output "file": yields {"kind": "progress", "done", "total", "peak"} per chunk, then one
        {"kind": "file", "format", "data", "seconds", "gpu_seconds", "waveform"}: stitched, levelled,
        encoded and tagged here (`modal_tts/replies.py`; `wire.speak_request_to_wire`,
        `wire.reply_from_wire`). A request of another wire version is refused with WireVersionMismatch,
        which the bot shows as "redeploy"; a bot that calls `speak` on an app deployed before it meets
        Modal's "Class has no method" and says the same.
    synthesize(texts: list[str], latent: {"latent", "shape", "revision"}, params: dict, seed: int)
        -> yields {"index": i, "pcm": bytes, "sample_rate": 44100, "gpu_seconds": float} in order
        version 1, kept for bots older than `speak`: whole chunks, int16 little-endian mono 44,100 Hz,
        one message per text; params is `SynthesisParams.to_dict()`; chunk i uses seed + i.
    info() -> {"revision", "device", "device_name", "dtype", "parameters", "versions", ...}
    compare_speakers(reference: bytes, sample: bytes) -> {"similarity": float} or {"too_little_speech":
        {"which", "voiced_seconds", "needed_seconds"}}: how alike two recordings' speakers sound (the
        consent check; `modal_tts.consent_check`), both float32 little-endian mono 44,100 Hz.
    check_watermark(pcm: bytes) -> {"confidence": float, "found": bool}: whether a clip (float32
        little-endian mono 44,100 Hz) carries the watermark every output gets (`modal_tts.watermark`).

Bad input raises `modal_tts.params.InvalidParams` or `modal_tts.wire.WireError` (ValueErrors), which
Modal re-raises in the bot as the same type: `InvalidLatent`, a damaged voice, stays distinguishable.

Deploy-time settings (environment of the machine running `modal deploy`), with cost-conscious defaults:

    ECHO_GPU               L40S  bf16 2.4B DiT at a good price per second; H100 is ~2x faster for
                                 ~2x the price, L4 is cheaper per hour but slower per request.
    ECHO_SCALEDOWN_WINDOW  120   seconds an idle container stays up (cost of idling vs. cold starts).
    ECHO_MIN_CONTAINERS    0     scale to zero when nobody talks; 1 removes cold starts for ~$1.95/h.
    ECHO_MAX_CONTAINERS    2     a ceiling on spend if a server floods the bot.
    ECHO_TIMEOUT           300   seconds one call may run before Modal stops it.
    ECHO_MAX_INPUTS        16    requests one container takes at once (`@modal.concurrent`): they share
                                 sampler calls through one scheduler; past it, Modal starts another
                                 container, up to ECHO_MAX_CONTAINERS.
    ECHO_TARGET_INPUTS     8     inputs per container the autoscaler aims for before adding one.
    ECHO_CPU               4     CPU cores reserved: eager PyTorch is bound by kernel launches, which a
                                 starved CPU slows down; decode and wire encoding use them too.
    ECHO_MAX_BATCH         8     rows per sampler call.
    ECHO_FASTPATH          graphs  CUDA graphs per (window, batch) captured at start (`off` for eager).
    ECHO_APP_NAME          echo-voicebot
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import modal
import numpy as np

from modal_tts import wire
from modal_tts.params import SAMPLE_RATE, SynthesisParams

if TYPE_CHECKING:
    from modal_tts.speakers import SpeakerVerifier

APP_NAME = os.environ.get("ECHO_APP_NAME", "echo-voicebot")
CLASS_NAME = "EchoTTS"
VOLUME_NAME = "echo-voicebot-weights"
VOLUME_PATH = "/weights"

Number = TypeVar("Number", int, float)


def _env_number(name: str, default: Number) -> Number:
    """`name` from the environment as a number of `default`'s type; a ValueError that names it if not."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return type(default)(value)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ValueError(
            f"{name} is {value!r} in the environment; allowed is {kind}. Fix it (`voicebot deploy` checks "
            "every setting before deploying)."
        ) from None


GPU = os.environ.get("ECHO_GPU", "L40S")
SCALEDOWN_WINDOW = _env_number("ECHO_SCALEDOWN_WINDOW", 120)
MIN_CONTAINERS = _env_number("ECHO_MIN_CONTAINERS", 0)
MAX_CONTAINERS = _env_number("ECHO_MAX_CONTAINERS", 2)
TIMEOUT = _env_number("ECHO_TIMEOUT", 300)
MAX_INPUTS = _env_number("ECHO_MAX_INPUTS", 16)
TARGET_INPUTS = _env_number("ECHO_TARGET_INPUTS", 8)
CPU = _env_number("ECHO_CPU", 4.0)
MAX_BATCH = _env_number("ECHO_MAX_BATCH", 8)
FASTPATH = os.environ.get("ECHO_FASTPATH", "graphs")

# The same pins as the project's `engine` extra, so the GPU runs the code the tests ran.
image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_pip_install(
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "echo-tts==0.1.4",
        "safetensors>=0.4",
        "numpy>=2.0",
        "av==18.1.0",  # engine-side encoding (modal_tts.output): FFmpeg with libopus and libmp3lame
        "mutagen==1.48.1",
        "huggingface_hub>=1.0",  # pulls in hf_xet, which replaced hf_transfer
        # The consent check's speaker encoder imports these (webrtcvad-wheels is webrtcvad, built).
        "webrtcvad-wheels==2.0.14.post1",
        "librosa==0.11.0",
        "scipy==1.17.1",
        # The watermark on every output (modal_tts.watermark): Perth imports librosa and scipy above,
        # pkg_resources (gone from setuptools 81) and PyYAML.
        "resemble-perth==1.0.1",
        "setuptools==80.10.2",
        "pyyaml==6.0.3",
    )
    # Without its deps: it asks for the source-only webrtcvad and `typing`, a backport of the stdlib's.
    .uv_pip_install("resemblyzer==0.1.4", extra_options="--no-deps")
    .env({"HF_XET_HIGH_PERFORMANCE": "1"})  # hf_xet's fast mode: the old HF_HUB_ENABLE_HF_TRANSFER
    .add_local_python_source("modal_tts")
)

app = modal.App(APP_NAME, image=image)
weights_volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


def _speaker_verifier() -> SpeakerVerifier:
    from modal_tts.speakers import SpeakerVerifier

    return SpeakerVerifier()


def _pcm(data: bytes) -> np.ndarray:
    """Float32 PCM off the wire; none at all is a recording with no speech, not a malformed request."""
    return wire.pcm_from_bytes(data) if data else np.zeros(0, np.float32)


@app.function(volumes={VOLUME_PATH: weights_volume}, timeout=1800)
def download_weights() -> list[str]:
    """Fill the Volume from Hugging Face (`modal run modal_tts/app.py::download_weights`). Idempotent."""
    from modal_tts.weights import fill_weights_dir

    fetched = fill_weights_dir(VOLUME_PATH)
    if fetched:
        weights_volume.commit()
    return fetched


@app.cls(
    gpu=GPU,
    volumes={VOLUME_PATH: weights_volume},
    scaledown_window=SCALEDOWN_WINDOW,
    min_containers=MIN_CONTAINERS,
    max_containers=MAX_CONTAINERS,
    timeout=TIMEOUT,
    cpu=CPU,
    # Restore a CPU-memory snapshot with the weights already loaded instead of re-reading 6 GB.
    enable_memory_snapshot=True,
)
@modal.concurrent(max_inputs=MAX_INPUTS, target_inputs=TARGET_INPUTS)
class EchoTTS:
    @modal.enter(snap=True)
    def load(self) -> None:
        """Runs once when the snapshot is made (no GPU yet): weights from the Volume into CPU memory."""
        import torch

        from modal_tts.engine import EchoEngine, weights_present
        from modal_tts.weights import fill_weights_dir

        in_container = not modal.is_local()
        # Tests and `.local()` runs point ECHO_WEIGHTS_DIR at a weights directory of their own.
        root = Path(os.environ.get("ECHO_WEIGHTS_DIR", VOLUME_PATH))
        if not weights_present(root):
            # First start on an empty Volume: fetch, keep for every later container, then load.
            if fill_weights_dir(root) and in_container:
                weights_volume.commit()
        # bf16 for the GPU it will be moved to; float32 when a CPU does the work.
        dtype = torch.bfloat16 if in_container else None
        self.engine = EchoEngine.from_dir(root, device="cpu", dtype=dtype)
        # The speaker encoder (~0.5 s to load and warm up) goes into the snapshot with the weights;
        # `.local()` runs load it on the first consent check instead.
        self.speakers_lock = threading.Lock()
        self.speakers = _speaker_verifier() if in_container else None

    @modal.enter(snap=False)
    def to_gpu(self) -> None:
        """Runs in every container after restore: weights onto the GPU, the fast path captured, and the
        one scheduler every concurrent input shares."""
        import torch

        from modal_tts.scheduler import Scheduler

        if torch.cuda.is_available():
            self.engine.to("cuda")
            if FASTPATH != "off":
                started = time.perf_counter()
                self.fast_path = self.engine.enable_fast_path(max_batch=MAX_BATCH)
                self.warmup_seconds = time.perf_counter() - started
        self.scheduler = Scheduler(self.engine, max_batch_rows=MAX_BATCH)

    @modal.exit()
    def stop(self) -> None:
        self.scheduler.close()

    @modal.method()
    def encode_speaker(self, pcm: bytes) -> dict[str, Any]:
        # On the GPU thread, between batches: all GPU work is one thread's.
        latent = self.scheduler.call(self.engine.encode_speaker, wire.pcm_from_bytes(pcm)).result()
        return wire.latent_to_wire(latent, self.engine.revision)

    @modal.method()
    def synthesize(
        self, texts: list[str], latent: dict[str, Any], params: dict[str, Any], seed: int
    ) -> Iterator[dict[str, Any]]:
        """Runs in a thread per input; the rows of inputs waiting together share sampler calls. A caller
        that goes away closes this generator, which cancels its rows."""
        speaker, _revision = wire.latent_from_wire(latent)
        settings = SynthesisParams.from_dict(params)
        for chunk in self.scheduler.stream(texts, speaker, settings, seed, chunk_timeout=TIMEOUT):
            yield wire.chunk_to_wire(chunk.index, chunk.audio, SAMPLE_RATE, gpu_seconds=chunk.gpu_seconds)

    @modal.method()
    def speak(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Wire version 2: PCM pieces as each block is decoded, or a finished file (`modal_tts.replies`).
        Runs in a thread per input, as synthesize; the encoding uses the container's reserved CPUs."""
        from modal_tts.replies import replies

        asked = wire.speak_request_from_wire(request)
        settings = SynthesisParams.from_dict(asked.params)
        pieces = self.scheduler.stream(
            asked.texts, asked.latent, settings, asked.seed, chunk_timeout=TIMEOUT, pieces=True
        )
        yield from replies(pieces, asked)

    @modal.method()
    def compare_speakers(self, reference: bytes, sample: bytes) -> dict[str, Any]:
        """The consent check's score, on the CPU in this input's thread: the GPU thread never waits for it."""
        from modal_tts.consent_check import TooLittleSpeech, reply_to_wire

        with self.speakers_lock:
            if self.speakers is None:
                self.speakers = _speaker_verifier()
        try:
            return reply_to_wire(self.speakers.compare(_pcm(reference), _pcm(sample)))
        except TooLittleSpeech as short:
            return reply_to_wire(short)

    @modal.method()
    def check_watermark(self, pcm: bytes) -> dict[str, Any]:
        """Whether a clip (float32 mono 44.1 kHz) carries the watermark every output here gets:
        {"confidence": 0..1, "found": bool}. On the GPU thread, between batches, as encode_speaker."""
        from modal_tts.watermark import THRESHOLD

        confidence = self.scheduler.call(self.engine.watermark_confidence, _pcm(pcm)).result()
        return {"confidence": confidence, "found": confidence >= THRESHOLD}

    @modal.method()
    def info(self) -> dict[str, Any]:
        info = self.scheduler.call(self.engine.info).result()
        return {
            **info,
            "app": APP_NAME,
            "gpu": GPU,
            "fast_path": getattr(self, "fast_path", {"fast_path": "off", "why": "no GPU"}),
            "warmup_seconds": getattr(self, "warmup_seconds", 0.0),
            # Since the container started: sampler calls, chunks cut and sampled again in a bigger
            # window, blocks sampled again for a long silence (the silence guard).
            "scheduler": {
                "batches": self.scheduler.batches_run,
                "cut_resamples": self.scheduler.planner.resampled,
                "silence_resamples": self.scheduler.planner.silences,
            },
        }
