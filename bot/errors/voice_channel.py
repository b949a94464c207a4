"""Speaking in a voice channel: the member isn't in one, the bot can't join it, isn't playing, is
busy elsewhere, or the member isn't listening there.
"""

from __future__ import annotations

from bot.errors.base import InvalidInput


class NotInVoiceChannel(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Join a voice channel first, or choose mode: file to get an audio file.")


class CannotJoinVoice(InvalidInput):
    def __init__(self, channel: str) -> None:
        super().__init__(
            f"I'm not allowed to join or speak in {channel}. Ask an admin to give me Connect and "
            "Speak there, or choose mode: file."
        )
        self.channel = channel


class NotPlaying(InvalidInput):
    def __init__(self) -> None:
        super().__init__("I'm not playing anything in a voice channel on this server.")


class NotListening(InvalidInput):
    def __init__(self, channel: str, *, or_requester: bool = False) -> None:
        who = "whoever asked for what is playing, " if or_requester else ""
        super().__init__(
            f"Only members listening in {channel}, {who}or someone with Manage Server or Move Members "
            "can do that. Join the channel first."
        )
        self.channel = channel


class SpeakingElsewhere(InvalidInput):
    def __init__(self, channel: str) -> None:
        super().__init__(
            f"I'm speaking in {channel} right now. Wait for it to finish, or use /stop there first."
        )
        self.channel = channel
