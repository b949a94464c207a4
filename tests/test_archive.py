"""`voicebot import` takes archives as untrusted input: every field checked, all or nothing, streamed
within bounds (a small compressed archive can't expand into gigabytes), and the consent record kept."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from bot import archive
from bot.cli import main
from bot.errors import LibraryFull
from bot.store import VoiceStore
from bot.store.files import latent_bytes

LATENT = np.ones((8, 80), np.float16)


def _voice(store: VoiceStore, name: str, reference: bytes) -> object:
    return store.add(
        1,
        name,
        owner_id=7,
        reference_flac=reference,
        latent=LATENT,
        duration_s=6.5,
        revision="echo-abc",
        consent_by=8,
        source="test",
        speaker_id=9,
    )


@pytest.fixture
def exported(tmp_path: Path) -> tuple[dict, dict[str, bytes]]:
    """A real export of guild 1 (Ada and Bob): its manifest, and its files by member name."""
    store = VoiceStore(tmp_path / "source")
    _voice(store, "Ada", b"fLaC-ada")
    _voice(store, "Bob", b"fLaC-bob")
    data, _ = archive.export_guild(store, 1)
    store.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return json.loads(members.pop(archive.MANIFEST)), members


def write_archive(
    path: Path, manifest: dict | bytes, files: dict[str, bytes], *, gzipped: bool = False
) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        for name, data in [(archive.MANIFEST, body), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue()) if gzipped else buffer.getvalue())
    return path


@pytest.fixture
def run_import(tmp_path, capsys):
    def run(path: Path, *extra: str) -> tuple[int, str]:
        code = main(["--data-dir", str(tmp_path / "target"), "import", *extra, str(path)])
        return code, capsys.readouterr().err

    return run


def target_voices(tmp_path: Path, guild: int = 1) -> list[str]:
    if not (tmp_path / "target" / "voicebot.db").exists():
        return []
    store = VoiceStore(tmp_path / "target", read_only=True)
    try:
        return [v.name for v in store.list(guild)]
    finally:
        store.close()


def broken(manifest: dict, change) -> dict:
    manifest = copy.deepcopy(manifest)
    change(manifest)
    return manifest


MALFORMED = {
    "no voices": (lambda m: m.pop("voices"), "voices are not a list"),
    "voices not a list": (lambda m: m.update(voices="Ada"), "voices are not a list"),
    "negative guild": (lambda m: m.update(guild_id=-5), "guild_id is -5, not a Discord id"),
    "guild as text": (lambda m: m.update(guild_id="1"), "guild_id is '1', not a Discord id"),
    "owner as text": (lambda m: m["voices"][1].update(owner_id="x"), "owner_id is 'x'"),
    "bad name": (lambda m: m["voices"][1].update(name="<@everyone>"), "name can't be used"),
    "name missing": (lambda m: m["voices"][1].pop("name"), "name is None"),
    "duration": (lambda m: m["voices"][1].update(duration_s="abc"), "duration_s is 'abc'"),
    "consent time": (lambda m: m["voices"][1].update(consent_at="yesterday"), "consent_at is 'yesterday'"),
    "path in the id": (lambda m: m["voices"][1].update(id="../../../etc/pw"), "id is '../../../etc/pw'"),
    "files": (lambda m: m["voices"][1]["files"].pop("latent.npy"), "not a sha256 for each of"),
    "voice not an object": (lambda m: m["voices"].append(7), "voice 3 of the manifest is not an object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_manifest_is_one_line_and_imports_nothing(case, exported, tmp_path, run_import):
    manifest, files = exported
    change, expected = MALFORMED[case]
    code, err = run_import(write_archive(tmp_path / "bad.tar", broken(manifest, change), files))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "is not a usable voice archive" in err and expected in err and "Nothing was imported" in err
    assert target_voices(tmp_path) == []  # Ada, whose entry was fine, isn't half-imported either


def test_manifest_not_json_or_not_first_is_refused(exported, tmp_path, run_import):
    manifest, files = exported
    code, err = run_import(write_archive(tmp_path / "a.tar", b"{not json", files))
    assert code == 2 and "is not JSON" in err
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [*files.items(), (archive.MANIFEST, json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "b.tar").write_bytes(buffer.getvalue())
    code, err = run_import(tmp_path / "b.tar")
    assert code == 2 and "does not start with its manifest.json" in err


def test_a_latent_the_engine_would_refuse_is_refused_even_with_a_matching_checksum(
    exported, tmp_path, run_import
):
    manifest, files = exported
    manifest = copy.deepcopy(manifest)
    bad = LATENT.copy()
    bad[3, 7] = np.nan
    entry = manifest["voices"][1]
    files[f"{entry['id']}/latent.npy"] = latent_bytes(bad)
    entry["files"]["latent.npy"] = hashlib.sha256(latent_bytes(bad)).hexdigest()
    code, err = run_import(write_archive(tmp_path / "nan.tar", manifest, files))
    assert code == 2 and "latent is damaged" in err and "NaN" in err
    assert target_voices(tmp_path) == []


def test_a_compressed_archive_that_would_expand_past_any_real_export_is_refused_unread(tmp_path, run_import):
    zeros = bytes(64 * 1024 * 1024)  # 64 MiB of manifest, gzipped to about 64 KB
    bomb = write_archive(tmp_path / "bomb.tar.gz", zeros, {}, gzipped=True)
    assert bomb.stat().st_size < 1024 * 1024
    tracemalloc.start()
    try:
        code, err = run_import(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 2 and "manifest.json would be 67,108,864 bytes; a manifest is at most" in err
    assert peak < 16 * 1024 * 1024, peak  # the member was refused from its header, never read


def test_a_failure_half_way_through_takes_back_what_was_imported(exported, tmp_path, monkeypatch, capsys):
    manifest, files = exported
    path = write_archive(tmp_path / "ok.tar", manifest, files)
    store = VoiceStore(tmp_path / "target")
    real_add, calls = store.add, []

    def second_add_finds_the_disk_full(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise LibraryFull(store.data_dir)
        return real_add(*args, **kwargs)

    monkeypatch.setattr(store, "add", second_add_finds_the_disk_full)
    with pytest.raises(LibraryFull):
        archive.import_guild(store, path)
    assert len(calls) == 2 and store.list(1) == []
    assert [p for p in (tmp_path / "target" / "voices").rglob("*") if p.is_file()] == []
    store.close()


def test_the_consent_record_speaker_and_creation_time_survive_a_round_trip(exported, tmp_path, run_import):
    manifest, files = exported
    code, err = run_import(write_archive(tmp_path / "ok.tar", manifest, files), "--guild", "5")
    assert code == 0, err
    store = VoiceStore(tmp_path / "target", read_only=True)
    try:
        for entry in manifest["voices"]:
            voice = store.get(5, entry["name"])
            kept = (voice.consent_by, voice.consent_at, voice.created_at, voice.speaker_id, voice.owner_id)
            assert kept == (8, entry["consent_at"], entry["created_at"], 9, 7)
            assert store.read_reference(voice) == files[f"{entry['id']}/reference.flac"]
    finally:
        store.close()
