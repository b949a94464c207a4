"""Every failure a user can cause or meet, as a type whose `str()` is the message they read.

Cogs and the CLI catch `VoiceBotError` and show `err.message`; nothing else turns an exception into
user-facing text. Messages say what happened and what to do, with the actual value and the allowed range.
"""

from __future__ import annotations

from bot.wording import plural


class VoiceBotError(Exception):
    """Base class: `message` is short, plain and safe to show in Discord or on a terminal."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(VoiceBotError):
    """The user asked for something the bot can't do as asked (CLI exit 2, ephemeral reply)."""


# --- text -----------------------------------------------------------------------------------


class TextTooLong(InvalidInput):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"That text is {length:,} characters long; the limit here is {limit:,}. "
            "Shorten it or split it into several messages."
        )
        self.length, self.limit = length, limit


class TextReadsTooLong(InvalidInput):
    """Short as typed, but emoji and symbols read out as words make it too long to speak."""

    def __init__(self, spoken_length: int, limit: int) -> None:
        super().__init__(
            f"Read aloud, that text comes to about {spoken_length:,} characters (emoji and symbols "
            f"are read as words); the limit is {limit:,}. Use fewer emoji or symbols."
        )
        self.spoken_length, self.limit = spoken_length, limit


class NothingToSay(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "There is nothing speakable in that text (only markup, symbols or whitespace). "
            "Give some words to say."
        )


# --- audio ----------------------------------------------------------------------------------


def fmt_seconds(seconds: float) -> str:
    if seconds >= 60:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{seconds:.1f} s"


def fmt_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} bytes"


class BadReference(InvalidInput):
    """Base for a reference clip that can't be used to clone a voice."""


class FileTooLarge(BadReference):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"That file is {fmt_bytes(size)}; a reference can be at most {fmt_bytes(limit)}. "
            "Trim it or send a compressed format such as MP3 or Ogg."
        )
        self.size, self.limit = size, limit


class NotAudio(BadReference):
    def __init__(self, detected: str | None = None) -> None:
        what = f" (it looks like {detected})" if detected else ""
        super().__init__(
            f"That file is not audio{what}. Send a recording as WAV, MP3, Ogg/Opus, M4A, FLAC, WebM or MP4."
        )
        self.detected = detected


class Undecodable(BadReference):
    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "That audio file is damaged or truncated and can't be decoded. Export it again and re-upload it."
        )
        self.detail = detail


class NoAudioStream(BadReference):
    def __init__(self, container: str) -> None:
        super().__init__(
            f"That {container} file has no audio track. Send a file with someone speaking in it."
        )
        self.container = container


class ReferenceTooShort(BadReference):
    def __init__(self, seconds: float, minimum: float) -> None:
        super().__init__(
            f"That clip is {fmt_seconds(seconds)} long; a reference must be "
            f"{fmt_seconds(minimum)} to 5 min. Record a little more speech."
        )
        self.seconds, self.minimum = seconds, minimum


class ReferenceTooLong(BadReference):
    def __init__(self, seconds: float, maximum: float) -> None:
        super().__init__(
            f"That clip is {fmt_seconds(seconds)} long; a reference can be 5 s to "
            f"{fmt_seconds(maximum)}. Trim it to the clearest part."
        )
        self.seconds, self.maximum = seconds, maximum


class ReferenceSilent(BadReference):
    def __init__(self, peak_dbfs: float) -> None:
        super().__init__(
            f"That clip is silent or nearly so (peak {peak_dbfs:.0f} dBFS). "
            "Send a recording where the speaker can be heard clearly."
        )
        self.peak_dbfs = peak_dbfs


class OutputTooLarge(InvalidInput):
    def __init__(self, seconds: float, fmt: str, size: int, limit: int) -> None:
        super().__init__(
            f"That speech is {fmt_seconds(seconds)} long and even at the lowest quality its "
            f"{fmt.upper()} file is {fmt_bytes(size)}; the upload limit here is {fmt_bytes(limit)}. "
            "Ask for shorter text or play it in a voice channel."
        )
        self.seconds, self.fmt, self.size, self.limit = seconds, fmt, size, limit

    def __reduce__(self) -> tuple[type, tuple[float, str, int, int]]:
        # Raised in the encoder's worker processes: it must cross back by pickle.
        return type(self), (self.seconds, self.fmt, self.size, self.limit)


class EncoderFailed(VoiceBotError):
    """An encoder process stopped (killed for memory, say) on a file's first try and on its retry."""

    def __init__(self) -> None:
        super().__init__(
            "Making the audio file failed (an encoder process stopped). "
            "Try again; if it keeps happening, tell a bot admin."
        )


# --- synthesis backend ------------------------------------------------------------------------


class BackendError(VoiceBotError):
    """The speech backend could not do the job; `admin_hint` says what a server admin should do."""

    admin_hint: str = ""


class BackendNotDeployed(BackendError):
    admin_hint = "Deploy the GPU app with `modal deploy modal_tts/app.py`, then try again."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The speech engine isn't set up yet, so nothing can be spoken right now. "
            "A bot admin needs to deploy it."
        )
        self.detail = detail


class LocalEngineUnavailable(BackendError):
    """The local backend can't start here: its weights folder or its device. `detail` says which and
    how to fix it, for the admin (the terminal shows it as is)."""

    admin_hint = "Run `voicebot doctor` on the bot's machine."

    def __init__(self, detail: str) -> None:
        super().__init__("The speech engine can't start on this machine. A bot admin needs to check it.")
        self.detail = detail


class BackendUnauthorised(BackendError):
    admin_hint = "Set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `uv run modal token new`)."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The bot can't sign in to its speech engine. A bot admin needs to check its Modal credentials."
        )
        self.detail = detail


class EngineNotInstalled(LocalEngineUnavailable):
    """The local backend was chosen where the `engine` extra (torch, echo-tts) isn't installed."""

    exit_code = 2  # a setup to fix, like a bad setting: trying again can't help

    def __init__(self, missing: list[str]) -> None:
        from modal_tts.prerequisites import not_installed

        super().__init__(not_installed("The local speech backend", missing))
        self.missing = missing


class ModalCredentialsMissing(BackendUnauthorised):
    """No Modal token in the environment, .env or ~/.modal.toml: one wording and exit code wherever
    it shows (clone, say, run, doctor, deploy), distinct from a token Modal rejects."""

    exit_code = 2
    admin_message = (
        "No Modal credentials: create a token at modal.com (Settings → API Tokens) or with "
        "`uv run modal token new`, then set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET in the environment or .env."
    )

    def __init__(self) -> None:
        super().__init__("no MODAL_TOKEN_ID / MODAL_TOKEN_SECRET and no ~/.modal.toml")


class BackendTimedOut(BackendError):
    admin_hint = (
        "The GPU took too long: on Modal, check its dashboard for cold starts or errors; on a local GPU, "
        "`voicebot doctor` and the bot's log."
    )

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The speech engine didn't answer within {seconds:.0f} s. Try again in a minute, "
            "perhaps with shorter text."
        )
        self.seconds = seconds


class BackendBusy(BackendError):
    admin_hint = "Raise ECHO_MAX_CONTAINERS (Modal) or the local queue size if this is frequent."

    def __init__(self, detail: str = "") -> None:
        super().__init__("The speech engine is busy with other requests. Try again in a moment.")
        self.detail = detail


class BackendUnreachable(BackendError):
    admin_hint = "The bot's machine can't reach Modal: check its network connection."

    def __init__(self, detail: str = "") -> None:
        super().__init__("The bot can't reach its speech engine right now. Try again in a minute.")
        self.detail = detail


class BackendFailed(BackendError):
    admin_hint = "See the bot's log for the error and `voicebot doctor` for a health check."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The speech engine failed on that request. Try again; if it keeps failing, tell a bot admin."
        )
        self.detail = detail


class SilentSpeech(BackendError):
    admin_hint = "The engine returned silent audio; check the weights (`voicebot doctor`) and the GPU's log."

    def __init__(self) -> None:
        super().__init__(
            "The speech engine returned silence instead of speech, so there was nothing to play. "
            "Try again, perhaps with another seed; if it keeps happening, tell a bot admin."
        )


class BackendInvalidRequest(BackendError, InvalidInput):
    admin_hint = "The request's settings were out of range; the message says which."

    def __init__(self, detail: str) -> None:
        VoiceBotError.__init__(self, detail)
        self.detail = detail


class SpeakerLatentRejected(BackendInvalidRequest):
    """The voice's stored latent is unusable (wrong shape, NaN or infinite values): the fault is the
    voice's, not the request's, so the caller marks it for re-encoding from its recording."""

    admin_hint = "The voice's latent is damaged; `voicebot doctor` re-encodes it from its recording."

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.message = (
            "That voice's data is damaged, so it can't speak right now; it is being rebuilt from its "
            "recording. Try again in a few minutes."
        )
        self.args = (self.message,)
        self.admin_message = (
            f"That voice's stored latent is damaged ({detail}); `voicebot doctor` re-encodes it from its "
            "recording."
        )


class ModelLoadTimedOut(BackendTimedOut):
    """The local backend's weights didn't finish loading within the backend's timeout."""

    admin_hint = "Check the weights folder's disk and the GPU driver: `voicebot doctor` tries a load."

    def __init__(self, seconds: float) -> None:
        VoiceBotError.__init__(
            self,
            f"Loading the speech model timed out after {seconds:.0f} s. Try again in a minute; if it "
            "keeps happening, tell a bot admin.",
        )
        self.seconds = seconds


# --- voice library ----------------------------------------------------------------------------


class InvalidVoiceName(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"“{name[:40]}” can't be a voice name: use 1 to 32 letters, digits, spaces, '-' or '_'."
        )
        self.name = name


class VoiceNameTaken(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server already has a voice called “{name}”. Pick another name or delete that one."
        )
        self.name = name


class VoiceNotFound(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no voice called “{name[:40]}” on this server. See the list with /voices.")
        self.name = name


class VoiceDeleted(InvalidInput):
    """The voice went away between the request and its turn (deleted while queued)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"The voice “{name}” was deleted before I got to it, so that wasn't spoken.")
        self.name = name


class DiskFull(VoiceBotError):
    def __init__(self) -> None:
        super().__init__(
            "The bot's disk is full, so that couldn't be saved and nothing was changed. "
            "Tell a bot admin: they need to free some space."
        )


class VoiceLimitReached(InvalidInput):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This server has reached its limit of {limit} voices. Delete one before cloning another."
        )
        self.limit = limit


class DictionaryEntryNotFound(InvalidInput):
    def __init__(self, word: str) -> None:
        super().__init__(f"This server's dictionary has no entry for “{word}”. See it with /dictionary list.")
        self.word = word


class InvalidDictionaryEntry(InvalidInput):
    def __init__(self, problem: str) -> None:
        super().__init__(f"That dictionary entry can't be saved: {problem}.")
        self.problem = problem


class DictionaryFull(InvalidInput):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This server's pronunciation dictionary is full ({limit} entries). Remove one first."
        )
        self.limit = limit


# --- Discord commands ---------------------------------------------------------------------------


class GuildOnly(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Voices belong to a server: use this command in a server, not in DMs.")


class NotAllowedToClone(InvalidInput):
    def __init__(self, role: str) -> None:
        super().__init__(f"Only members with the {role} role may clone voices on this server.")
        self.role = role


class ConsentRequired(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "A voice can only be cloned with its speaker's permission. Confirm that you have it "
            "(set consent to True) and try again."
        )


class NotVoiceOwner(InvalidInput):
    def __init__(self, name: str, *, speaker_may: bool = False) -> None:
        if speaker_may:
            message = (
                f"Only the owner of “{name}”, the member it was cloned from, or someone with Manage Server "
                "can delete it."
            )
        else:
            message = f"Only the owner of “{name}” or someone with Manage Server can change or delete it."
        super().__init__(message)
        self.name = name


class FormExpired(InvalidInput):
    """A "Clone voice from message" form submitted after it closed (timed out, sent, or a restart)."""

    def __init__(self) -> None:
        super().__init__(
            "That form has expired (forms stay open for 10 minutes and can be sent once). Nothing was "
            "cloned. Use “Clone voice from message” on the recording again."
        )


class NotYourForm(InvalidInput):
    def __init__(self) -> None:
        super().__init__("That form belongs to someone else. Open your own with “Clone voice from message”.")


class DownloadFailed(VoiceBotError):
    """Discord wouldn't hand over an upload: 404 when it expired or was deleted."""

    def __init__(self, status: int) -> None:
        if status == 404:
            message = (
                "That file is no longer on Discord (the upload expired or was deleted), so nothing "
                "was cloned. Upload the recording again and retry."
            )
        else:
            message = f"Discord didn't let me download that file (HTTP {status}). Try again in a moment."
        super().__init__(message)
        self.status = status


class NoAudioAttachment(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "That message has no audio attachment to clone. Use a voice message or an audio file."
        )


class NoTextInMessage(InvalidInput):
    def __init__(self) -> None:
        super().__init__("That message has no text to read out (only attachments or embeds).")


class NoDefaultVoice(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Pick a voice: give the voice option, or set your default with /voice default.")


class CooldownActive(InvalidInput):
    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"Slow down a little: you can use /say again in {max(1, round(seconds_left))} s.")
        self.seconds_left = seconds_left


class QuotaExhausted(InvalidInput):
    def __init__(self, used_s: float, quota_s: float, needed_s: float = 0.0) -> None:
        if used_s < quota_s and needed_s:
            message = (
                f"This server has {fmt_seconds(quota_s - used_s)} of today's {fmt_seconds(quota_s)} of "
                f"speech left (UTC), and that could take up to {fmt_seconds(needed_s)}. Try shorter text; "
                "the quota resets at midnight UTC, and an admin can raise it with /settings."
            )
        else:
            message = (
                f"This server has used {fmt_seconds(used_s)} of its {fmt_seconds(quota_s)} of speech "
                "for today (UTC). It resets at midnight UTC; an admin can raise it with /settings."
            )
        super().__init__(message)
        self.used_s, self.quota_s, self.needed_s = used_s, quota_s, needed_s


class UploadFailed(VoiceBotError):
    """Discord refused or lost the finished audio file; nothing is charged for it."""

    def __init__(self, status: int) -> None:
        super().__init__(
            f"Discord didn't accept the audio file (HTTP {status}), so it wasn't posted and nothing "
            "was counted against today's quota. Try again in a moment, or use a voice channel."
        )
        self.status = status


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


# --- the voice library on disk ------------------------------------------------------------------


class LibraryError(VoiceBotError):
    """The voice library on disk can't be used as it is; nothing the member did.

    `message` is for Discord members (no paths, no commands they can't run); `admin_message` is the
    terminal's one line: what happened, where, and what to do. `exit_code` is the CLI's (sysexits.h).
    """

    exit_code = 1

    def __init__(self, message: str, admin_message: str) -> None:
        super().__init__(message)
        self.admin_message = admin_message


class LibraryDamaged(LibraryError):
    exit_code = 65  # EX_DATAERR

    def __init__(self, path: object, detail: str) -> None:
        super().__init__(
            "The bot's voice library is damaged, so voices can't be used right now. "
            "A bot admin needs to restore it.",
            f"The voice library {path} is damaged or unreadable ({detail}). Stop the bot and restore it "
            "from a backup; nothing was changed.",
        )
        self.path, self.detail = path, detail


class LibraryFull(LibraryError):
    exit_code = 74  # EX_IOERR

    def __init__(self, path: object) -> None:
        super().__init__(
            "The bot's disk is full, so nothing new can be saved. Try again later; a bot admin needs "
            "to free some space.",
            f"No space left on the disk holding {path}. Free some space and try again; nothing was saved.",
        )
        self.path = path


class LibraryReadOnly(LibraryError):
    exit_code = 77  # EX_NOPERM

    def __init__(self, path: object, detail: str) -> None:
        super().__init__(
            "The bot can't save anything right now: its voice library is read-only. "
            "A bot admin needs to fix that.",
            f"The voice library {path} is read-only or not writable by this user ({detail}). Remount it "
            "read-write or fix its owner and permissions; nothing was saved.",
        )
        self.path, self.detail = path, detail


class LibraryBusy(LibraryError):
    """Another process held the library's write lock for longer than the bot waits (a backup, an
    `sqlite3` shell, another voicebot): nothing was changed, and a retry in a moment works."""

    exit_code = 75  # EX_TEMPFAIL

    def __init__(self, path: object, waited_s: float) -> None:
        super().__init__(
            "The voice library is busy right now (another program is writing to it), so nothing was "
            "changed. Try again in a moment.",
            f"The voice library {path} stayed locked by another process for {waited_s:g} s (a backup, an "
            "`sqlite3` shell or another voicebot writing to it); nothing was changed. Try again when it "
            "is done.",
        )
        self.path, self.waited_s = path, waited_s


class LibraryTooNew(LibraryError):
    exit_code = 65  # EX_DATAERR

    def __init__(self, path: object, version: int, known: int) -> None:
        super().__init__(
            "The bot's voice library was written by a newer version of the bot. A bot admin needs to "
            "upgrade it.",
            f"The voice library {path} has schema {version}, newer than this voicebot knows ({known}): "
            "it was written by a newer version. Upgrade voicebot (`git pull && uv sync --locked`); "
            "nothing was changed.",
        )
        self.path, self.version, self.known = path, version, known


class VoicesFolderMissing(LibraryError):
    exit_code = 66  # EX_NOINPUT

    def __init__(self, path: object, voices: int) -> None:
        super().__init__(
            "The bot can't reach its voice recordings right now. A bot admin needs to check its storage.",
            f"The folder {path} is missing, but the library lists {plural(voices, 'voice')}: is its volume "
            "mounted? Nothing was deleted; put the folder back and try again.",
        )
        self.path, self.voices = path, voices


class VoiceNeedsRepair(LibraryError):
    """A voice's latent is missing or garbled: re-encodable while its reference recording is kept."""

    exit_code = 66  # EX_NOINPUT

    def __init__(self, name: str, voice_id: str, *, reference_kept: bool) -> None:
        if reference_kept:
            message = (
                f"The voice “{name}” can't speak right now: its files are damaged. It is being rebuilt "
                "from its recording; try again in a few minutes."
            )
            admin = (
                f"The voice “{name}” ({voice_id}) has a missing or damaged latent; its reference "
                "recording is intact. Run `voicebot doctor --repair` to re-encode it (a running bot "
                "does so by itself)."
            )
        else:
            message = (
                f"The voice “{name}” can't be used: its recording is missing or damaged. A bot admin "
                "needs to restore it from a backup, or delete the voice."
            )
            admin = (
                f"The voice “{name}” ({voice_id}) has lost its reference recording, so it can't be "
                "re-encoded: restore its folder from a backup (nothing was deleted), or delete the "
                "voice. `voicebot doctor` lists every damaged voice."
            )
        super().__init__(message, admin)
        self.name, self.voice_id, self.reference_kept = name, voice_id, reference_kept


class OutputNotWritable(VoiceBotError):
    """`voicebot say --out PATH` can't be written (a terminal user's choice, so one message)."""

    exit_code = 73  # EX_CANTCREAT

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"Can't write {path}: {reason}. Choose another --out path; nothing was written.")
        self.path, self.reason = path, reason
