"""bot.playback.item_outcome: how a queue item ended, decided from the state it was left in, as a table."""

from __future__ import annotations

import pytest

from bot.errors import BackendFailed
from bot.playback import Ending, ItemEnd, Outcome, item_outcome

STREAM = BackendFailed("GPU fell over")
JOIN = TimeoutError("voice connect timed out")
PLAYER = OSError("socket closed")

# (state the item was left in, ending, error)
TABLE: dict[str, tuple[ItemEnd, Ending, Exception | None]] = {
    "the stream ran out: played": (ItemEnd(exhausted=True), Ending.PLAYED, None),
    "nothing to say at all: played": (ItemEnd(exhausted=True, packets_sent=0), Ending.PLAYED, None),
    "ran out after the stream raised: failed": (
        ItemEnd(exhausted=True, source_error=STREAM),
        Ending.FAILED,
        STREAM,
    ),
    "stream raised, cut off before running out: failed": (
        ItemEnd(source_error=STREAM),
        Ending.FAILED,
        STREAM,
    ),
    "discord.py's player reported an error: failed": (
        ItemEnd(player_error=PLAYER, exhausted=True),
        Ending.FAILED,
        PLAYER,
    ),
    "joining for it failed: failed": (ItemEnd(failure=JOIN), Ending.FAILED, JOIN),
    "skipped while playing": (ItemEnd(interrupted=Ending.SKIPPED, exhausted=True), Ending.SKIPPED, None),
    "skip wins over a stream error": (
        ItemEnd(interrupted=Ending.SKIPPED, source_error=STREAM),
        Ending.SKIPPED,
        None,
    ),
    "stop wins over a failed join": (ItemEnd(interrupted=Ending.STOPPED, failure=JOIN), Ending.STOPPED, None),
    "leave wins over a lost connection": (
        ItemEnd(interrupted=Ending.STOPPED, voice_down=True),
        Ending.STOPPED,
        None,
    ),
    "voice down when its turn came: disconnected": (ItemEnd(voice_down=True), Ending.DISCONNECTED, None),
    "voice down before playing beats a stream error": (
        ItemEnd(voice_down=True, source_error=STREAM),
        Ending.DISCONNECTED,
        None,
    ),
    "connection given up mid-item: disconnected": (ItemEnd(connected=False), Ending.DISCONNECTED, None),
    "a stream error beats a connection lost mid-item": (
        ItemEnd(connected=False, source_error=STREAM),
        Ending.FAILED,
        STREAM,
    ),
    "ran out, then the connection went: played": (
        ItemEnd(exhausted=True, connected=False),
        Ending.PLAYED,
        None,
    ),
    "someone else stopped our player: stopped": (ItemEnd(), Ending.STOPPED, None),
}


@pytest.mark.parametrize(("end", "ending", "error"), TABLE.values(), ids=TABLE.keys())
def test_item_outcome_table(end: ItemEnd, ending: Ending, error: Exception | None) -> None:
    assert item_outcome(end) == Outcome(ending, error, 0.0)


@pytest.mark.parametrize("end", [ItemEnd(exhausted=True), ItemEnd(interrupted=Ending.SKIPPED), ItemEnd()])
def test_seconds_are_the_packets_sent_whatever_the_ending(end: ItemEnd) -> None:
    sent = ItemEnd(**{**end.__dict__, "packets_sent": 150})
    assert item_outcome(sent).seconds == pytest.approx(3.0)  # 150 packets of 20 ms
