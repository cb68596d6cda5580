"""32-byte keys from the environment and their HKDF subkeys (backups and encrypted staging share them)."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def parse_key(text: str) -> bytes | None:
    """A 32-byte key from 64 hex characters or base64 of 32 bytes; None when `text` is neither."""
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def derive_key(key: bytes, info: bytes, length: int = 32) -> bytes:
    """A subkey of `key` for one purpose, named by `info` (HKDF-SHA256, no salt)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)
