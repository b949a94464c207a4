"""Sampler settings: ranges, defaults and the dict form that crosses the wire."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modal_tts.params import (
    InvalidLatent,
    InvalidParams,
    SynthesisParams,
    check_latent,
    check_seed,
    chunk_seed,
)


def test_defaults_are_echos_recommended_guidance():
    p = SynthesisParams()
    assert (p.steps, p.cfg_scale_text, p.cfg_scale_speaker) == (40, 3.0, 8.0)
    assert (p.cfg_min_t, p.cfg_max_t, p.sequence_length) == (0.5, 1.0, None)  # None: sized to the text
    assert p.speaker_kv_scale is None


def test_round_trip_through_a_dict():
    p = SynthesisParams(steps=20, speaker_kv_scale=1.5)
    assert SynthesisParams.from_dict(p.to_dict()) == p
    blocks = SynthesisParams(block_plan="low-latency", silence_guard_s=None)
    assert SynthesisParams.from_dict(blocks.to_dict()) == blocks


def test_block_settings_at_their_defaults_stay_off_the_wire():
    """An app deployed before block plans refuses unknown settings; a default request must still run."""
    assert {"block_plan", "silence_guard_s"}.isdisjoint(SynthesisParams(steps=20).to_dict())
    assert SynthesisParams(block_plan="even").to_dict()["block_plan"] == "even"
    with pytest.raises(
        InvalidParams, match="block_plan is 'fast'; allowed is one of whole, low-latency, even"
    ):
        SynthesisParams(block_plan="fast")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps is 0; allowed is 1 to 200"),
        ({"steps": 2.5}, "whole number"),
        ({"cfg_scale_text": -1.0}, "cfg_scale_text"),
        ({"cfg_scale_speaker": math.nan}, "cfg_scale_speaker"),
        ({"sequence_length": 641}, "sequence_length is 641; allowed is 4 to 640"),
        ({"cfg_min_t": 0.9, "cfg_max_t": 0.2}, "must not be above"),
        ({"rescale_k": None}, "set together"),
        ({"speaker_kv_scale": 9.0}, "speaker_kv_scale"),
        ({"truncation_factor": "0.8"}, "must be a number"),
        ({"steps": True}, "must be a number"),
        ({"steps": None}, "required"),
    ],
)
def test_out_of_range_settings_name_the_setting_and_range(changes, message):
    with pytest.raises(InvalidParams, match=message):
        SynthesisParams(**changes)


def test_unknown_settings_from_the_wire_are_refused():
    with pytest.raises(InvalidParams, match="Unknown setting"):
        SynthesisParams.from_dict({"stepz": 3})


def test_seeds():
    assert check_seed(0) == 0
    with pytest.raises(InvalidParams):
        check_seed(2**63)
    assert chunk_seed(5, 2) == 7
    assert chunk_seed(2**63 - 1, 1) == 0


@pytest.mark.parametrize(
    ("latent", "message"),
    [
        (np.zeros((7, 80), np.float16), "7 frames"),
        (np.zeros((0, 80), np.float16), "0 frames"),
        (np.zeros((6404, 80), np.float16), "6400"),
        (np.zeros((8, 79), np.float16), r"\[T, 80\]"),
        (np.zeros((8, 80, 1), np.float16), r"\[T, 80\]"),
        (np.zeros((8, 80), object), r"\[T, 80\]"),
        ([[0.0] * 80] * 8, r"\[T, 80\]"),
        (np.full((8, 80), np.nan, np.float16), "NaN"),
        (np.full((8, 80), -np.inf, np.float32), "infinite"),
    ],
    ids=["7x80", "0x80", "6404x80", "8x79", "3d", "object", "list", "nan", "inf"],
)
def test_a_damaged_speaker_latent_is_an_invalid_latent(latent, message):
    with pytest.raises(InvalidLatent, match=message) as info:
        check_latent(latent)
    assert isinstance(info.value, InvalidParams)  # still a bad request to whoever only knows that


def test_a_sound_speaker_latent_passes_unchanged():
    latent = np.ones((8, 80), np.float16)
    assert check_latent(latent) is latent
