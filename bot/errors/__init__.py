"""Every failure a user can cause or meet, as a type whose `str()` is the message they read.

Cogs and the CLI catch `VoiceBotError` and show `err.message`; nothing else turns an exception into
user-facing text. Messages say what happened and what to do, with the actual value and the allowed range.

Import from here (`from bot.errors import VoiceNotFound`); the modules group the types by what failed:
  base           VoiceBotError, InvalidInput, and fmt_seconds / fmt_bytes for the messages
  text           the text to speak (too long, nothing speakable)
  reference      a clip to clone from (download, size, format, length, silence)
  output         the speech's audio file (too big, encoder died, upload refused, --out not writable)
  backend        the speech backend, Modal or local: BackendError and its admin hints
  library        voice names, limits, the dictionary, API keys, and the library on disk (LibraryError)
  consent        a voice waiting for its speaker's consent, and consent voice messages that can't count
  commands       who may use a Discord command, where, how often, and what it needs
  voice_channel  joining, playing and listening in a voice channel
  watermark      a clip to check for the watermark or a consent voice message (size, length, download)
  privacy        a member's own data: /myvoices, a voice's use, /forget me's confirmation
"""

from __future__ import annotations

from bot.errors.backend import (
    BackendBusy,
    BackendError,
    BackendFailed,
    BackendInvalidRequest,
    BackendNotDeployed,
    BackendOutdated,
    BackendTimedOut,
    BackendUnauthorised,
    BackendUnreachable,
    EngineNotInstalled,
    LocalEngineUnavailable,
    ModalCredentialsMissing,
    ModelLoadTimedOut,
    SilentSpeech,
    SpeakerLatentRejected,
)
from bot.errors.base import (
    InvalidInput,
    VoiceBotError,
    fmt_bytes,
    fmt_seconds,
)
from bot.errors.commands import (
    ConsentRequired,
    CooldownActive,
    FormExpired,
    GuildOnly,
    NoAudioAttachment,
    NoDefaultVoice,
    NotAllowedToClone,
    NoTextInMessage,
    NotVoiceOwner,
    NotYourForm,
    QuotaExhausted,
)
from bot.errors.consent import (
    ConsentMessageTooShort,
    ConsentNeedsVoiceMessage,
    ConsentVoiceMismatch,
    ManyPendingConsents,
    ReferenceTooLittleSpeech,
    SpeakerNotAMember,
    SpeakerRequired,
    TooLittleSpeech,
    VoicePending,
)
from bot.errors.library import (
    ApiKeyNameTaken,
    ApiKeyNotFound,
    DictionaryEntryNotFound,
    DictionaryFull,
    DiskFull,
    InvalidApiKeyName,
    InvalidDictionaryEntry,
    InvalidVoiceName,
    LibraryBusy,
    LibraryDamaged,
    LibraryError,
    LibraryFull,
    LibraryReadOnly,
    LibraryTooNew,
    LibraryUnreachable,
    TooManyApiKeys,
    VoiceDeleted,
    VoiceLimitReached,
    VoiceNameTaken,
    VoiceNeedsRepair,
    VoiceNotFound,
    VoicesFolderMissing,
)
from bot.errors.output import (
    EncoderFailed,
    OutputNotWritable,
    OutputTooLarge,
    UploadFailed,
)
from bot.errors.privacy import (
    ConfirmationExpired,
    NotYourConfirmation,
    NotYourVoice,
    UsageNotVisible,
)
from bot.errors.reference import (
    BadReference,
    DownloadFailed,
    FileTooLarge,
    NoAudioStream,
    NotAudio,
    ReferenceSilent,
    ReferenceTooLong,
    ReferenceTooShort,
    Undecodable,
)
from bot.errors.text import (
    NothingToSay,
    TextReadsTooLong,
    TextTooLong,
)
from bot.errors.voice_channel import (
    CannotJoinVoice,
    NotInVoiceChannel,
    NotListening,
    NotPlaying,
    SpeakingElsewhere,
)
from bot.errors.watermark import (
    ClipDownloadFailed,
    ClipTooLarge,
    ClipTooLong,
    ClipTooShort,
    NoAudioToCheck,
)

__all__ = [
    "ApiKeyNameTaken",
    "ApiKeyNotFound",
    "BackendBusy",
    "BackendError",
    "BackendFailed",
    "BackendInvalidRequest",
    "BackendNotDeployed",
    "BackendOutdated",
    "BackendTimedOut",
    "BackendUnauthorised",
    "BackendUnreachable",
    "BadReference",
    "CannotJoinVoice",
    "ClipDownloadFailed",
    "ClipTooLarge",
    "ClipTooLong",
    "ClipTooShort",
    "ConfirmationExpired",
    "ConsentMessageTooShort",
    "ConsentNeedsVoiceMessage",
    "ConsentRequired",
    "ConsentVoiceMismatch",
    "CooldownActive",
    "DictionaryEntryNotFound",
    "DictionaryFull",
    "DiskFull",
    "DownloadFailed",
    "EncoderFailed",
    "EngineNotInstalled",
    "FileTooLarge",
    "FormExpired",
    "GuildOnly",
    "InvalidApiKeyName",
    "InvalidDictionaryEntry",
    "InvalidInput",
    "InvalidVoiceName",
    "LibraryBusy",
    "LibraryDamaged",
    "LibraryError",
    "LibraryFull",
    "LibraryReadOnly",
    "LibraryTooNew",
    "LibraryUnreachable",
    "LocalEngineUnavailable",
    "ManyPendingConsents",
    "ModalCredentialsMissing",
    "ModelLoadTimedOut",
    "NoAudioAttachment",
    "NoAudioStream",
    "NoAudioToCheck",
    "NoDefaultVoice",
    "NoTextInMessage",
    "NotAllowedToClone",
    "NotAudio",
    "NotInVoiceChannel",
    "NotListening",
    "NotPlaying",
    "NotVoiceOwner",
    "NotYourConfirmation",
    "NotYourForm",
    "NotYourVoice",
    "NothingToSay",
    "OutputNotWritable",
    "OutputTooLarge",
    "QuotaExhausted",
    "ReferenceSilent",
    "ReferenceTooLittleSpeech",
    "ReferenceTooLong",
    "ReferenceTooShort",
    "SilentSpeech",
    "SpeakerLatentRejected",
    "SpeakerNotAMember",
    "SpeakerRequired",
    "SpeakingElsewhere",
    "TextReadsTooLong",
    "TextTooLong",
    "TooLittleSpeech",
    "TooManyApiKeys",
    "Undecodable",
    "UploadFailed",
    "UsageNotVisible",
    "VoiceBotError",
    "VoiceDeleted",
    "VoiceLimitReached",
    "VoiceNameTaken",
    "VoiceNeedsRepair",
    "VoiceNotFound",
    "VoicePending",
    "VoicesFolderMissing",
    "fmt_bytes",
    "fmt_seconds",
]
