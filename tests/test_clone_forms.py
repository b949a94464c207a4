"""The open "Clone voice from message" forms: one per invocation, for its member, for 10 minutes."""

from __future__ import annotations

import pytest

from bot.errors import FormExpired, NotYourForm
from cogs.clone import OpenForms, form_values


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_form_is_taken_once_by_its_own_member_and_server():
    forms = OpenForms(clock=Clock())
    custom_id = forms.open(7, user_id=1, guild_id=10, attachment="a.ogg", message_id=99)
    with pytest.raises(NotYourForm):
        forms.take(custom_id, user_id=2, guild_id=10)
    with pytest.raises(NotYourForm):
        forms.take(custom_id, user_id=1, guild_id=11)
    form = forms.take(custom_id, user_id=1, guild_id=10)
    assert (form.attachment, form.message_id) == ("a.ogg", 99)
    with pytest.raises(FormExpired):
        forms.take(custom_id, user_id=1, guild_id=10)


def test_forms_expire_and_expired_ones_are_not_kept():
    clock = Clock()
    forms = OpenForms(timeout_s=600, clock=clock)
    old = forms.open(1, user_id=1, guild_id=10, attachment="a", message_id=1)
    clock.now += 601
    with pytest.raises(FormExpired):
        forms.take(old, user_id=1, guild_id=10)
    for n in range(100):
        forms.open(100 + n, user_id=1, guild_id=10, attachment="a", message_id=n)
    clock.now += 601
    forms.open(999, user_id=1, guild_id=10, attachment="a", message_id=0)
    assert len(forms) == 1


def test_form_values_reads_action_rows_and_labels():
    data = {
        "custom_id": "clone-voice:1",
        "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "name", "value": "Ada"}]},
            {"type": 18, "component": {"type": 4, "custom_id": "consent", "value": "yes"}},
        ],
    }
    assert form_values(data) == {"name": "Ada", "consent": "yes"}
