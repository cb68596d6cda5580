"""Verify a backup set: every file against the manifest, then fully decrypted and decompressed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from fsspec import AbstractFileSystem

from nova_pipeline.backup.crypto import CHUNK_BYTES, SealError, iter_plain, key_from_env
from nova_pipeline.backup.sets import VERIFY, BackupSet, filesystem, load_set, write_json


def check_file(fs: AbstractFileSystem, set_path: str, entry: dict[str, Any], key: bytes | None) -> str | None:
    """None when the file matches its manifest entry, else a one-line problem naming it."""
    name, path = entry["name"], f"{set_path}/{entry['name']}"
    if not fs.exists(path):
        return f"missing file: {name}"
    size = fs.size(path)
    if size != entry["stored_size"]:
        return f"size mismatch ({size} bytes, manifest says {entry['stored_size']}; truncated or damaged): {name}"
    stored = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            stored.update(chunk)
    if stored.hexdigest() != entry["stored_sha256"]:
        return f"sha256 mismatch (damaged file): {name}"
    plain, plain_size = hashlib.sha256(), 0
    try:
        with fs.open(path, "rb") as f:
            for chunk in iter_plain(f, key, name):
                plain.update(chunk)
                plain_size += len(chunk)
    except SealError as e:
        return str(e)
    if plain_size != entry["plain_size"] or plain.hexdigest() != entry["plain_sha256"]:
        return f"decrypted content differs from the manifest: {name}"
    return None


def set_key(backup: BackupSet, key: bytes | None) -> bytes | None:
    """The key a set needs: None for unencrypted sets, else `key` or NOVA_BACKUP_KEY."""
    if backup.manifest.get("encryption") is None:
        return None
    return key or key_from_env(required=True)


def verify_set(location: str, key: bytes | None = None) -> dict[str, Any]:
    """Check every file of a set; records and returns {checked_at, ok, problems, manifest_sha256}.

    Problems name the file (missing, truncated, tampered, wrong key). A missing
    NOVA_BACKUP_KEY for an encrypted set raises BackupKeyError.
    """
    backup = load_set(location)
    key = set_key(backup, key)
    fs, path = filesystem(backup.location)
    problems = [p for f in backup.manifest["files"] if (p := check_file(fs, path, f, key))]
    result = {"checked_at": datetime.now(UTC).isoformat(), "ok": not problems, "problems": problems,
              "manifest_sha256": backup.manifest_sha256}
    write_json(fs, f"{path}/{VERIFY}", result)
    return result
