"""A guild's voices as one .tar file, for backups and moves: `voicebot export` / `voicebot import`.

Layout: `manifest.json` (format, version, guild, and per voice its metadata and the sha256 of each file),
then `<voice id>/reference.flac` and `<voice id>/latent.npy`. Import verifies every checksum and name
before writing anything, then adds each voice through `VoiceStore.add` (new ids, same owner, consent
and revision). A name the target guild already has is refused (nothing imported), or with
`rename=True` given the first free `NAME-2`, `NAME-3`, ….
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot import names
from bot.errors import InvalidInput, VoiceLimitReached, VoiceNameTaken
from bot.store import Voice, VoiceStore
from bot.store import files as store_files

FORMAT = "voicebot-voices"
VERSION = 1
MANIFEST = "manifest.json"


class BadArchive(InvalidInput):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} is not a usable voice archive: {problem}. Nothing was imported.")


@dataclass(frozen=True)
class Imported:
    voice: Voice
    renamed_from: str | None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o644
    tar.addfile(info, io.BytesIO(data))


def export_guild(store: VoiceStore, guild_id: int) -> tuple[bytes, list[Voice]]:
    """The guild's voices as a .tar, and which they are. A voice whose files are unreadable raises the
    store's error rather than be left out of a backup silently."""
    voices = store.list(guild_id)
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


def _read(path: Path) -> tuple[dict, dict[str, bytes]]:
    try:
        with tarfile.open(path, "r") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            if MANIFEST not in members:
                raise BadArchive(path, f"it has no {MANIFEST}")
            contents = {name: tar.extractfile(m).read() for name, m in members.items()}  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError) as exc:
        cut = isinstance(exc, EOFError | tarfile.ReadError) and "unexpected end" in str(exc)
        problem = "it ends too soon (a copy cut short?)" if cut else "it is not a .tar file"
        raise BadArchive(path, f"{problem}; `voicebot export` writes the archives it reads") from None
    try:
        manifest = json.loads(contents[MANIFEST])
    except ValueError:
        raise BadArchive(path, f"its {MANIFEST} is not JSON") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BadArchive(path, f"it is not a {FORMAT} version {VERSION} archive")
    return manifest, contents


def _free_name(taken: set[str], name: str) -> str:
    for n in range(2, 1000):
        suffix = f"-{n}"
        candidate = name[: 32 - len(suffix)] + suffix
        if names.name_key(candidate) not in taken:
            return candidate
    raise VoiceNameTaken(name)


def import_guild(
    store: VoiceStore, path: Path, guild_id: int | None = None, *, rename: bool = False
) -> list[Imported]:
    """Add the archive's voices to `guild_id` (default: the guild it was exported from)."""
    manifest, contents = _read(path)
    target = int(guild_id or manifest["guild_id"])
    taken = {names.name_key(v.name) for v in store.list(target)}
    plan = []
    for entry in manifest["voices"]:
        files = {}
        for filename, expected in entry["files"].items():
            data = contents.get(f"{entry['id']}/{filename}")
            if data is None:
                raise BadArchive(path, f"voice “{entry['name']}” lacks {filename}")
            if _sha256(data) != expected:
                raise BadArchive(path, f"voice “{entry['name']}”'s {filename} fails its checksum")
            files[filename] = data
        try:
            latent = store_files.read_latent(io.BytesIO(files[store_files.LATENT]))  # type: ignore[arg-type]
        except store_files.DamagedLatent as exc:
            raise BadArchive(path, f"voice “{entry['name']}”'s latent is damaged ({exc})") from None
        name = names.clean_name(entry["name"])
        new_name = name
        if names.name_key(name) in taken:
            if not rename:
                raise VoiceNameTaken(name)
            new_name = _free_name(taken, name)
        taken.add(names.name_key(new_name))
        plan.append((entry, new_name, files[store_files.REFERENCE], latent))
    if store.count(target) + len(plan) > store.max_voices_per_guild:
        raise VoiceLimitReached(store.max_voices_per_guild)
    imported = []
    for entry, new_name, reference, latent in plan:
        voice = store.add(
            target,
            new_name,
            owner_id=entry["owner_id"],
            reference_flac=reference,
            latent=latent,
            duration_s=entry["duration_s"],
            revision=entry["revision"],
            consent_by=entry["consent_by"],
            source=f"import:{path.name}:{entry['id']}",
        )
        imported.append(Imported(voice, entry["name"] if new_name != entry["name"] else None))
    return imported
