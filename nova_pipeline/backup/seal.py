"""The manifest seal: the manifest's own content, AES-256-GCM encrypted under a key derived from NOVA_BACKUP_KEY.

`seal` = {algorithm, key, key_id, nonce, sealed}. The seal key is
HKDF-SHA256(NOVA_BACKUP_KEY, info=SEAL_INFO) and the key id, stored in clear,
is the first 8 bytes of HKDF-SHA256(NOVA_BACKUP_KEY, info=KEY_ID_INFO). Opening
the sealed copy authenticates it; comparing it with the manifest names the
fields edited since the set was written. Unencrypted sets carry no seal: their
manifest is only checksummed, not authenticated.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nova_pipeline.backup.crypto import derive_key

SEAL_INFO = b"nova-backup/manifest-seal/1"
KEY_ID_INFO = b"nova-backup/key-id/1"
_PARAMS = {"algorithm": "AES-256-GCM", "key": "HKDF-SHA256(NOVA_BACKUP_KEY, info=nova-backup/manifest-seal/1)"}


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key: tells which key a set was written with."""
    return derive_key(key, KEY_ID_INFO, 8).hex()


def seal(manifest: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The seal of a manifest (without its `seal` field)."""
    kid = key_id(key)
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(derive_key(key, SEAL_INFO)).encrypt(nonce, body, kid.encode())
    return {**_PARAMS, "key_id": kid, "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode()}


def sealed_with(manifest: dict[str, Any], key: bytes) -> bool:
    """Whether the manifest's seal names this key (False: another key, or an edited key id)."""
    return (manifest.get("seal") or {}).get("key_id") == key_id(key)


def seal_problem(manifest: dict[str, Any], key: bytes) -> str | None:
    """None when the manifest equals its sealed copy, else one line naming what differs.

    Call only when sealed_with(manifest, key): a wrong key otherwise reads as a broken seal.
    """
    s = manifest.get("seal")
    try:
        nonce, sealed = base64.b64decode(s["nonce"], validate=True), base64.b64decode(s["sealed"], validate=True)
        original = json.loads(AESGCM(derive_key(key, SEAL_INFO)).decrypt(nonce, sealed, s["key_id"].encode()))
    except (KeyError, TypeError, ValueError, InvalidTag):
        return "manifest seal is damaged (manifest.json was edited after the set was written)"
    current = {k: v for k, v in manifest.items() if k != "seal"}
    changed = sorted(k for k in current.keys() | original.keys() if current.get(k, _MISSING) != original.get(k, _MISSING))
    if changed:
        return f"manifest fields changed after the set was written: {', '.join(changed)}"
    return None


_MISSING = object()
