"""The speaker's own consent below Discord: pending voices and their requests in the library (both
engines), the decisions in bot.consent, and the audit lines they write."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from bot import audit, consent
from bot.errors import ManyPendingConsents, VoicePending
from bot.speech import plan
from bot.store import GuildSettings, VoiceLibrary
from bot.store.consents import PendingConsent

LATENT = np.ones((8, 80), dtype=np.float16)


@pytest.fixture
def store(open_test_library):
    return open_test_library(max_voices_per_guild=3)


def pending_voice(
    store: VoiceLibrary, guild: int = 1, name: str = "Bobby", *, speaker: int = 22, expires_in=3600.0
):
    request = store.request_consent(
        voice_id=f"{guild:02x}" * 8,
        guild_id=guild,
        speaker_id=speaker,
        requested_by=11,
        sentence="I agree that Bot may speak in my voice on Alpha.",
        expires_at=time.time() + expires_in,
    )
    voice = store.add(
        guild,
        name,
        owner_id=11,
        reference_flac=b"fLaC",
        latent=LATENT,
        duration_s=6.0,
        revision="r",
        consent_by=11,
        source="test",
        speaker_id=speaker,
        voice_id=request.voice_id,
        pending=True,
    )
    return request, voice


def test_a_pending_voice_is_kept_listed_and_counted_but_cannot_speak(store):
    _, voice = pending_voice(store)
    assert voice.pending and store.get(1, "Bobby").pending and [v.name for v in store.list(1)] == ["Bobby"]
    assert store.count(1) == 1  # it holds its slot while it waits
    with pytest.raises(VoicePending) as refused:
        plan(store, guild_id=1, user_id=11, voice_name="Bobby", words="Hello.", max_chars=100)
    assert "<@22>" in refused.value.message
    with pytest.raises(VoicePending):
        store.set_default_voice(1, 11, "Bobby")
    assert store.pending_speaker(voice.id) == 22


def test_a_request_is_found_by_speaker_server_and_message_then_confirmed(store):
    _, voice = pending_voice(store)
    pending_voice(store, guild=2, name="Other", speaker=33)
    store.posted_consent_request(voice.id, channel_id=5, message_id=6)
    (found,) = store.pending_consents(guild_id=1, speaker_id=22)
    assert (found.channel_id, found.message_id, found.attempts) == (5, 6, 0)
    assert store.pending_consents(guild_id=2, speaker_id=22) == []
    assert store.consent_attempt(voice.id) == 1 and store.consent_attempt(voice.id) == 2
    agreed = store.confirm_consent(found)
    assert not agreed.pending and agreed.consent_by == 22 and agreed.speaker_id == 22
    assert store.pending_consent(voice.id) is None and not store.get(1, "Bobby").pending


def test_expiry_and_withdrawal_delete_the_pending_voice_once(store):
    request, voice = pending_voice(store, expires_in=-1)
    _, kept = pending_voice(store, guild=2, name="Later", speaker=33)
    assert [r.voice_id for r in store.expired_consents()] == [voice.id]
    assert store.next_consent_expiry() == pytest.approx(request.expires_at)
    assert store.withdraw_consent_request(request).id == voice.id
    assert store.find(1, "Bobby") is None and store.expired_consents() == []
    assert store.withdraw_consent_request(request) is None  # idempotent
    assert store.find(2, "Later") is not None and store.pending_consent(kept.id) is not None


def test_deleting_a_pending_voice_ends_its_request(store):
    _, voice = pending_voice(store)
    store.delete(1, "Bobby")
    assert store.pending_consent(voice.id) is None


def test_a_request_left_without_its_voice_by_a_crash_expires_like_any_other(store):
    request = store.request_consent(
        voice_id="cd" * 8,
        guild_id=1,
        speaker_id=22,
        requested_by=11,
        sentence="s",
        expires_at=time.time() - 1,
    )
    assert store.withdraw_consent_request(request) is None and store.pending_consents() == []


def test_the_server_setting_defaults_on_and_survives_a_round_trip(store):
    assert store.settings(1).speaker_consent is True
    assert store.update_settings(1, speaker_consent=False).speaker_consent is False
    assert store.settings(1).speaker_consent is False
    assert store.update_settings(1, cooldown_s=3.0).speaker_consent is False


def _request(voice_id: str, message_id: int | None) -> PendingConsent:
    return PendingConsent(voice_id, 1, 22, 11, 5, message_id, "s", 0.0, 1.0, 0)


def test_which_request_a_message_answers():
    one, two = _request("a", 100), _request("b", 200)
    assert consent.request_for([one, two], 200) is two
    assert consent.request_for([one], None) is one
    assert consent.request_for([one], 999) is None  # a reply to something else
    with pytest.raises(ManyPendingConsents):
        consent.request_for([one, two], None)


def test_who_needs_to_agree():
    on, off = GuildSettings(1), GuildSettings(1, speaker_consent=False)
    assert consent.needs_consent(on, own_voice_message=False)
    assert not consent.needs_consent(on, own_voice_message=True)
    assert not consent.needs_consent(off, own_voice_message=False)
    asked = consent.ask(22, bot_name="Echo", server_name="Alpha", expiry_hours=2)
    assert asked.sentence == "I agree that Echo may speak in my voice on Alpha."
    assert asked.expires_in_s == 7200


def test_audit_lines_name_who_where_and_which_voice_as_text_and_json(caplog):
    caplog.set_level(logging.INFO, logger="voicebot.audit")
    fields = audit.record("consent_given", actor=22, guild=1, voice="ab" * 8, similarity=0.91)
    (record,) = caplog.records
    assert (
        record.getMessage()
        == f"audit event='consent_given' actor=22 guild=1 voice='{'ab' * 8}' similarity=0.91"
    )
    line = json.loads(audit.JsonFormatter("shards 0-1 of 2").format(record))
    assert line["audit"] == fields and line["level"] == "INFO" and line["label"] == "shards 0-1 of 2"
    with pytest.raises(ValueError):
        audit.record("made-up", actor=1, guild=1)
