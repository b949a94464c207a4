"""The voice library: what a member asks of it that it can't do (voice names, limits, the pronunciation
dictionary, API keys), and the library on disk being unusable (`LibraryError`: damaged, full, read-only, busy,
too new, its folder missing, a voice needing repair).
"""

from __future__ import annotations

from bot.errors.base import InvalidInput, VoiceBotError
from bot.wording import plural

# --- what members ask of the library --------------------------------------------------------------


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


class ApiKeyNotFound(InvalidInput):
    def __init__(self, key: str) -> None:
        super().__init__(f"This server has no API key called “{key[:64]}”. See them with /apikey list.")
        self.key = key


class ApiKeyNameTaken(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server already has an API key called “{name}”. Pick another name, or revoke that one."
        )
        self.name = name


class InvalidApiKeyName(InvalidInput):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"“{name[:40]}” can't be an API key's name: {problem}.")
        self.name, self.problem = name, problem


class TooManyApiKeys(InvalidInput):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This server has reached its limit of {limit} API keys. Revoke one with /apikey revoke before "
            "creating another."
        )
        self.limit = limit


# --- the voice library on disk --------------------------------------------------------------------


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


class LibraryUnreachable(LibraryError):
    """The library's PostgreSQL server can't be reached (down, restarting, a network fault). The call
    was retried once on a fresh connection where that was safe; nothing was half written, as every
    write is one transaction."""

    exit_code = 69  # EX_UNAVAILABLE

    def __init__(self, where: object, detail: str) -> None:
        super().__init__(
            "The bot can't reach its voice library right now, so nothing was changed. Try again in a moment.",
            f"The voice library's database {where} can't be reached ({detail}). Check that PostgreSQL is "
            "running and reachable, then try again; nothing was changed.",
        )
        self.where, self.detail = where, detail


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
