"""A guild's voices as one .tar file, for backups and moves: `voicebot export` / `voicebot import`.

Layout: `manifest.json` first (format, version, guild, and per voice its metadata and the sha256 of each
file), then `<voice id>/reference.flac` and `<voice id>/latent.npy`.

Import is all or nothing, and reads the archive as a stream, never whole: an archive is not trusted.
- First pass: the manifest is checked field by field (a wrong one is named, never a traceback), then
  every file is read in blocks against the size a voice's file can have (checked from its tar header
  before a byte of it is read, so a small compressed archive can't expand into gigabytes), its
  checksum, and, for latents, what the engine accepts (`bot.store.files.check_latent`). Names are
  checked against the target guild and the voice limit. Nothing is written until all of it passed.
- Second pass: each voice is added through `VoiceLibrary.add` (new ids; the same owner, speaker, consent
  record and creation time, as the archive holds them). If one add fails (a full disk, say), the voices
  this import already added are deleted again.
A name the target guild already has is refused (nothing imported), or with `rename=True` given the first
free `NAME-2`, `NAME-3`, ….
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from bot import names
from bot.errors import InvalidInput, InvalidVoiceName, VoiceLimitReached, VoiceNameTaken
from bot.store import Voice, VoiceLibrary
from bot.store import files as store_files

FORMAT = "voicebot-voices"
VERSION = 1
MANIFEST = "manifest.json"

# Bounds on what a voicebot export can hold, checked before anything is read.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # about 3 KB a voice, for the 1,000 voices a guild may have
MAX_REFERENCE_BYTES = 64 * 1024 * 1024  # a 5-minute reference as FLAC is about 15 MB
MAX_LATENT_BYTES = 6400 * 80 * 2 + 4096  # the largest latent, plus its .npy header
MAX_VOICES = 1000
MAX_DISCORD_ID = 2**63 - 1
BLOCK = 1 << 20
_VOICE_ID = re.compile(r"[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BadArchive(InvalidInput):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} is not a usable voice archive: {problem}. Nothing was imported.")


@dataclass(frozen=True)
class Imported:
    voice: Voice
    renamed_from: str | None


@dataclass(frozen=True)
class _Entry:
    """One voice of a manifest, every field checked."""

    id: str
    name: str
    owner_id: int
    speaker_id: int | None
    consent_by: int
    consent_at: str
    created_at: str
    duration_s: float
    revision: str
    sha256: dict[str, str]  # file name → checksum


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o644
    tar.addfile(info, io.BytesIO(data))


def export_guild(store: VoiceLibrary, guild_id: int) -> tuple[bytes, list[Voice]]:
    """The guild's voices as a .tar, and which they are. A voice whose files are unreadable raises the
    store's error rather than be left out of a backup silently. A voice still waiting for its speaker's
    consent is left out: imported, it would be usable without that consent."""
    voices = [voice for voice in store.list(guild_id) if not voice.pending]
    entries, payload = [], []
    for voice in voices:
        reference = store.read_reference(voice)  # checked: a damaged recording is named, not copied
        latent = store_files.latent_bytes(store.load_latent(voice))
        entries.append(
            {
                **asdict(voice),
                "files": {store_files.REFERENCE: _sha256(reference), store_files.LATENT: _sha256(latent)},
            }
        )
        payload += [
            (f"{voice.id}/{store_files.REFERENCE}", reference),
            (f"{voice.id}/{store_files.LATENT}", latent),
        ]
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "guild_id": guild_id,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "voices": entries,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
        for name, data in payload:
            _add(tar, name, data)
    return buffer.getvalue(), voices


# --- reading an archive ---------------------------------------------------------------------------

_Members = Generator[tuple[tarfile.TarInfo, IO[bytes] | None], None, None]


def _members(path: Path) -> _Members:
    """The archive's members in order, streamed (any compression tarfile knows), errors as BadArchive."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                yield member, tar.extractfile(member) if member.isfile() else None
    except _UNREADABLE as exc:
        raise _unreadable(path, exc) from None


_UNREADABLE = (tarfile.TarError, EOFError, OSError, ValueError)


def _unreadable(path: Path, exc: BaseException) -> BaseException:
    """What a failure to read the archive means: a damaged or foreign file, or (left as is) the disk."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc  # the disk, not the archive: the CLI names it
    cut = isinstance(exc, EOFError | tarfile.ReadError) and (
        "unexpected end" in str(exc) or "ended before" in str(exc)
    )
    problem = "it ends too soon (a copy cut short?)" if cut else "it is not a .tar file"
    return BadArchive(path, f"{problem}; `voicebot export` writes the archives it reads")


def _read(
    path: Path, member: tarfile.TarInfo, stream: IO[bytes] | None, limit: int, what: str
) -> Iterator[bytes]:
    """`member`'s data in blocks, refused from its header alone when it is bigger than such a file is."""
    if stream is None:
        raise BadArchive(path, f"{member.name} is not a file")
    if member.size > limit:
        raise BadArchive(path, f"{member.name} would be {member.size:,} bytes; {what} is at most {limit:,}")
    while True:
        try:
            block = stream.read(BLOCK)
        except _UNREADABLE as exc:
            raise _unreadable(path, exc) from None
        if not block:
            return
        yield block


def _text(path: Path, where: str, value: Any, field: str, *, limit: int = 200) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise BadArchive(path, f"{where}'s {field} is {value!r}, not text of 1 to {limit} characters")
    return value


def _discord_id(path: Path, where: str, value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DISCORD_ID:
        raise BadArchive(
            path, f"{where}'s {field} is {value!r}, not a Discord id (a whole number 1 to 2^63-1)"
        )
    return value


def _moment(path: Path, where: str, value: Any, field: str) -> str:
    text = _text(path, where, value, field, limit=40)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadArchive(path, f"{where}'s {field} is {value!r}, not a date and time with its time zone")
    return text


def _entry(path: Path, index: int, raw: Any) -> _Entry:
    where = f"voice {index + 1} of the manifest"
    if not isinstance(raw, dict):
        raise BadArchive(path, f"{where} is not an object")
    name_raw = _text(path, where, raw.get("name"), "name", limit=64)
    where = f"voice “{name_raw[:40]}”"
    try:
        name = names.clean_name(name_raw)
    except InvalidVoiceName as exc:
        raise BadArchive(path, f"{where}'s name can't be used here ({exc.message})") from None
    voice_id = raw.get("id")
    if not isinstance(voice_id, str) or not _VOICE_ID.fullmatch(voice_id):
        raise BadArchive(path, f"{where}'s id is {voice_id!r}, not 16 hex digits")
    duration = raw.get("duration_s")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration <= 600:
        raise BadArchive(path, f"{where}'s duration_s is {duration!r}, not a number of seconds up to 600")
    checksums = raw.get("files")
    wanted = {store_files.REFERENCE, store_files.LATENT}
    if (
        not isinstance(checksums, dict)
        or set(checksums) != wanted
        or not all(isinstance(v, str) and _SHA256.fullmatch(v) for v in checksums.values())
    ):
        raise BadArchive(
            path, f"{where}'s files are {checksums!r}, not a sha256 for each of {sorted(wanted)}"
        )
    if raw.get("consent_pending"):
        raise BadArchive(path, f"{where} still waits for its speaker's consent, so it can't be imported")
    speaker = raw.get("speaker_id")
    return _Entry(
        id=voice_id,
        name=name,
        owner_id=_discord_id(path, where, raw.get("owner_id"), "owner_id"),
        speaker_id=None if speaker is None else _discord_id(path, where, speaker, "speaker_id"),
        consent_by=_discord_id(path, where, raw.get("consent_by"), "consent_by"),
        consent_at=_moment(path, where, raw.get("consent_at"), "consent_at"),
        created_at=_moment(path, where, raw.get("created_at"), "created_at"),
        duration_s=float(duration),
        revision=_text(path, where, raw.get("revision"), "revision"),
        sha256=dict(checksums),
    )


def _manifest(path: Path, data: bytes) -> tuple[int, list[_Entry]]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BadArchive(path, f"its {MANIFEST} is not JSON") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or manifest.get("version") != VERSION
    ):
        raise BadArchive(path, f"it is not a {FORMAT} version {VERSION} archive")
    guild_id = _discord_id(path, "the manifest", manifest.get("guild_id"), "guild_id")
    voices = manifest.get("voices")
    if not isinstance(voices, list) or len(voices) > MAX_VOICES:
        raise BadArchive(path, f"its voices are not a list of at most {MAX_VOICES}")
    entries = [_entry(path, i, raw) for i, raw in enumerate(voices)]
    ids = [entry.id for entry in entries]
    if len(set(ids)) != len(ids):
        raise BadArchive(path, "it lists one voice id twice")
    return guild_id, entries


def _first_manifest(path: Path, members: _Members) -> tuple[int, list[_Entry]]:
    first = next(members, None)
    if first is None or first[0].name != MANIFEST:
        raise BadArchive(path, f"it does not start with its {MANIFEST}")
    return _manifest(path, b"".join(_read(path, *first, MAX_MANIFEST_BYTES, "a manifest")))


def exported_guild(path: Path) -> int:
    """The guild the archive was exported from, read from its manifest alone (checked as import checks
    it): where an import goes by default."""
    members = _members(path)
    try:
        return _first_manifest(path, members)[0]
    finally:
        members.close()


def _checked(path: Path) -> tuple[int, list[_Entry], dict[str, np.ndarray]]:
    """First pass: the manifest and every file, checked as the module docstring says; the latents."""
    members = _members(path)
    guild_id, entries = _first_manifest(path, members)
    expected = {f"{entry.id}/{filename}": (entry, filename) for entry in entries for filename in entry.sha256}
    latents: dict[str, np.ndarray] = {}
    for member, stream in members:
        if member.name not in expected:
            raise BadArchive(path, f"it holds {member.name!r}, which `voicebot export` never writes")
        entry, filename = expected.pop(member.name)
        digest = hashlib.sha256()
        if filename == store_files.LATENT:
            data = b"".join(_read(path, member, stream, MAX_LATENT_BYTES, "a latent"))
            digest.update(data)
            try:
                latents[entry.id] = store_files.read_latent(io.BytesIO(data))  # type: ignore[arg-type]
            except store_files.DamagedLatent as exc:
                raise BadArchive(path, f"voice “{entry.name}”'s latent is damaged ({exc})") from None
        else:
            head = b""
            for block in _read(path, member, stream, MAX_REFERENCE_BYTES, "a reference recording"):
                head = head or block[:4]
                digest.update(block)
            if head != b"fLaC":
                raise BadArchive(path, f"voice “{entry.name}”'s {filename} is not FLAC audio")
        if digest.hexdigest() != entry.sha256[filename]:
            raise BadArchive(path, f"voice “{entry.name}”'s {filename} fails its checksum")
    if expected:
        entry, filename = next(iter(expected.values()))
        raise BadArchive(path, f"voice “{entry.name}” lacks {filename}")
    return guild_id, entries, latents


def _references(path: Path, entries: list[_Entry]) -> Iterator[tuple[_Entry, bytes]]:
    """Second pass: each voice's reference, checked against its checksum again (the file may have
    changed since the first pass)."""
    by_member = {f"{entry.id}/{store_files.REFERENCE}": entry for entry in entries}
    for member, stream in _members(path):
        entry = by_member.get(member.name)
        if entry is None:
            continue
        data = b"".join(_read(path, member, stream, MAX_REFERENCE_BYTES, "a reference recording"))
        if _sha256(data) != entry.sha256[store_files.REFERENCE]:
            raise BadArchive(path, f"voice “{entry.name}”'s reference changed while it was imported")
        yield entry, data


def _free_name(taken: set[str], name: str) -> str:
    for n in range(2, 1000):
        suffix = f"-{n}"
        candidate = name[: 32 - len(suffix)] + suffix
        if names.name_key(candidate) not in taken:
            return candidate
    raise VoiceNameTaken(name)


def import_guild(
    store: VoiceLibrary, path: Path, guild_id: int | None = None, *, rename: bool = False
) -> list[Imported]:
    """Add the archive's voices to `guild_id` (default: the guild it was exported from): all of them,
    or none."""
    exported_from, entries, latents = _checked(path)
    target = int(guild_id or exported_from)
    # key_of, not name_key: a stored name from before a naming rule still takes its key
    taken = {names.key_of(v.name) for v in store.list(target)}
    new_names = {}
    for entry in entries:
        new_name = entry.name
        if names.name_key(new_name) in taken:
            if not rename:
                raise VoiceNameTaken(new_name)
            new_name = _free_name(taken, new_name)
        taken.add(names.name_key(new_name))
        new_names[entry.id] = new_name
    if store.count(target) + len(entries) > store.max_voices_per_guild:
        raise VoiceLimitReached(store.max_voices_per_guild)
    imported: list[Imported] = []
    try:
        for entry, reference in _references(path, entries):
            voice = store.add(
                target,
                new_names[entry.id],
                owner_id=entry.owner_id,
                reference_flac=reference,
                latent=latents[entry.id],
                duration_s=entry.duration_s,
                revision=entry.revision,
                consent_by=entry.consent_by,
                consent_at=entry.consent_at,
                created_at=entry.created_at,
                speaker_id=entry.speaker_id,
                source=f"import:{path.name}:{entry.id}",
            )
            renamed = entry.name if voice.name != entry.name else None
            imported.append(Imported(voice, renamed))
    except BaseException:
        for done in reversed(imported):  # all or nothing: what this import added goes again
            store.delete(target, done.voice.id)
        raise
    return imported
