"""Verify a backup set: the manifest against its seal, then every file against the manifest, fully decrypted."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from fsspec import AbstractFileSystem

from nova_pipeline.backup.crypto import CHUNK_BYTES, MAGIC, SealError, first_frame_opens, iter_plain, key_from_env
from nova_pipeline.backup.errors import UnsealedSetError, WrongKeyError
from nova_pipeline.backup.seal import key_id, seal_problem, sealed_with
from nova_pipeline.backup.sets import VERIFY, BackupSet, filesystem, load_set, parent_of, sweep_leftovers, write_json

AUTHENTICATED = "manifest authenticated"
CHECKSUMS_ONLY = "unencrypted set: checksummed, not authenticated"
ACCEPTED_UNSEALED = "manifest NOT sealed (set written before manifests were sealed), accepted with --accept-unsealed"


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
    if not backup.encrypted:
        return None
    return key or key_from_env(required=True)


def authenticate(backup: BackupSet, key: bytes | None, *, accept_unsealed: bool = False) -> tuple[str | None, str]:
    """(problem, what was proven) for a set's manifest; problem names the edit, None when there is none.

    Raises WrongKeyError when `key` is not the one the set was written with,
    and UnsealedSetError for a set from before the seal unless accept_unsealed.
    """
    m, fs, path = backup.manifest, *filesystem(backup.location)
    if not backup.encrypted:
        encrypted = next((f["name"] for f in m["files"] if _starts_with_magic(fs, f"{path}/{f['name']}")), None)
        if encrypted or m.get("seal"):
            what = f"{encrypted} is encrypted" if encrypted else "it carries a seal"
            return f"manifest says the set is unencrypted but {what} (manifest.json was edited after the set was written)", ""
        return None, CHECKSUMS_ONLY
    if backup.legacy and not m.get("seal"):
        if not accept_unsealed:
            raise UnsealedSetError(f"set {backup.set_id} was written before manifests were sealed, so its label, dates "
                                   "and pre-migration flag cannot be authenticated; pass --accept-unsealed to use it anyway")
        if _key_opens(fs, path, m["files"], key) is False:
            raise WrongKeyError(f"wrong NOVA_BACKUP_KEY: the files of set {backup.set_id} do not open with it; "
                                "nothing checked or recorded")
        return None, ACCEPTED_UNSEALED
    if not m.get("seal"):
        return "manifest seal removed (manifest.json was edited after the set was written)", ""
    if not sealed_with(m, key):
        if _key_opens(fs, path, m["files"], key):
            return "manifest seal names another key id (manifest.json was edited after the set was written)", ""
        raise WrongKeyError(f"wrong NOVA_BACKUP_KEY: set {backup.set_id} was written with key id "
                            f"{m['seal'].get('key_id')}, yours is {key_id(key)}; nothing checked or recorded")
    return seal_problem(m, key), AUTHENTICATED


def manifest_state(backup: BackupSet, key: bytes | None) -> str:
    """What `backup list` can say about a manifest without reading data files.

    'sealed' (authenticated), 'EDITED' (fails its seal), 'other key', 'no key'
    (NOVA_BACKUP_KEY unset), 'unsealed' (written before the seal) or 'plain'
    (unencrypted: checksummed only).
    """
    m = backup.manifest
    if not backup.encrypted:
        return "EDITED" if m.get("seal") else "plain"
    if not m.get("seal"):
        return "unsealed" if backup.legacy else "EDITED"
    if key is None:
        return "no key"
    if not sealed_with(m, key):
        return "other key"
    return "EDITED" if seal_problem(m, key) else "sealed"


def _key_opens(fs: AbstractFileSystem, path: str, files: list[dict[str, Any]], key: bytes) -> bool | None:
    """Whether the key opens the first frame of any of the files; None when none of them exists."""
    tried = False
    for f in files:
        if fs.exists(f"{path}/{f['name']}"):
            tried = True
            with fs.open(f"{path}/{f['name']}", "rb") as raw:
                if first_frame_opens(raw, key):
                    return True
    return False if tried else None


def _starts_with_magic(fs: AbstractFileSystem, path: str) -> bool:
    if not fs.exists(path):
        return False
    with fs.open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def verify_set(location: str, key: bytes | None = None, *, accept_unsealed: bool = False) -> dict[str, Any]:
    """Authenticate a set's manifest and check every file; records and returns the result.

    The result is {checked_at, ok, problems, manifest, manifest_sha256}:
    problems name the edited manifest fields or the damaged file (missing,
    truncated, tampered); `manifest` says what was proven about the manifest.
    A wrong or missing key and an unsealed set (see authenticate) raise and
    record nothing. Leftovers of killed backups beside the set are swept first.
    """
    backup = load_set(location)
    sweep_leftovers(parent_of(backup.location))
    key = set_key(backup, key)
    problem, proven = authenticate(backup, key, accept_unsealed=accept_unsealed)
    fs, path = filesystem(backup.location)
    problems = [problem] if problem else [p for f in backup.manifest["files"] if (p := check_file(fs, path, f, key))]
    result = {"checked_at": datetime.now(UTC).isoformat(), "ok": not problems, "problems": problems,
              "manifest": proven, "manifest_sha256": backup.manifest_sha256}
    write_json(fs, f"{path}/{VERIFY}", result)
    return result
