"""The speaker's own consent: a voice that waits for it, consent messages that can't count (typed, too
short, another voice), and the speaker check's own limits (too little speech to tell who is speaking)."""

from __future__ import annotations

from bot.errors.base import InvalidInput, fmt_seconds
from modal_tts.consent_check import MIN_VOICED_SECONDS
from modal_tts.consent_check import TooLittleSpeech as EngineTooLittleSpeech


class TooLittleSpeech(InvalidInput):
    """The consent voice message has too little speech, once silences are cut, to tell who is speaking."""

    def __init__(self, voiced_seconds: float, needed_seconds: float = MIN_VOICED_SECONDS) -> None:
        super().__init__(
            f"That voice message has too little speech ({fmt_seconds(voiced_seconds)} once silences are "
            f"cut; at least {fmt_seconds(needed_seconds)} is needed). Record it again and read the whole "
            "sentence aloud."
        )
        self.voiced_seconds, self.needed_seconds = voiced_seconds, needed_seconds


class ReferenceTooLittleSpeech(InvalidInput):
    """The voice's kept recording has too little speech to compare a consent voice message with."""

    def __init__(self, voiced_seconds: float, needed_seconds: float = MIN_VOICED_SECONDS) -> None:
        super().__init__(
            f"That voice's recording has too little speech to check whose voice it is "
            f"({fmt_seconds(voiced_seconds)} once silences are cut; at least {fmt_seconds(needed_seconds)} "
            "is needed). Clone it again from a recording with more speech."
        )
        self.voiced_seconds, self.needed_seconds = voiced_seconds, needed_seconds


def from_engine(exc: EngineTooLittleSpeech) -> TooLittleSpeech | ReferenceTooLittleSpeech:
    """The engine side's TooLittleSpeech in the bot's words: which recording fell short."""
    kind = ReferenceTooLittleSpeech if exc.which == "reference" else TooLittleSpeech
    return kind(exc.voiced_seconds, exc.needed_seconds)


class VoicePending(InvalidInput):
    """/say (or a default voice) with a voice whose speaker has not confirmed yet."""

    def __init__(self, name: str, speaker_id: int | None) -> None:
        who = f"<@{speaker_id}>" if speaker_id else "its speaker"
        super().__init__(
            f"“{name}” can't speak yet: it is waiting for {who} to confirm with a voice message. "
            "Ask them to reply to the consent request in the channel where it was cloned."
        )
        self.name = name


class SpeakerRequired(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "Say whose voice this is: add `speaker:` and pick the member speaking in the recording. "
            "They confirm with a voice message before the voice can be used."
        )


class SpeakerNotAMember(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "The speaker must be a member of this server (they confirm with a voice message here), "
            "and not a bot."
        )


class ConsentNeedsVoiceMessage(InvalidInput):
    """The speaker answered the request with typed text or an uploaded file."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"That was {what}, not a voice message. To agree, reply to the request with a voice message "
            "recorded in the Discord app (hold the microphone button) reading the sentence shown."
        )


class ConsentVoiceMismatch(InvalidInput):
    def __init__(self, similarity: float, threshold: float, tries_left: int) -> None:
        more = (
            f"You can try {tries_left} more time{'s' if tries_left != 1 else ''}."
            if tries_left
            else "That was the last try: the request is closed and the recording deleted."
        )
        super().__init__(
            "That voice message doesn't sound like the voice in the recording "
            f"(match {similarity:.2f}, needed {threshold:.2f}). Only the person speaking in it can agree. "
            + more
        )
        self.similarity = similarity


class ConsentMessageTooShort(InvalidInput):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"That voice message is {seconds:.1f} s long; read the whole sentence (2 s or more) and send it "
            "again."
        )


class ManyPendingConsents(InvalidInput):
    def __init__(self, count: int) -> None:
        super().__init__(
            f"You have {count} voice requests waiting for you here: reply to the one you agree to "
            "with your voice message."
        )
