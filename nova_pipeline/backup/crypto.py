"""Sealed files: zstd-compressed, then AES-256-GCM encrypted in authenticated frames.

Layout of an encrypted file: an 8-byte magic and a 16-byte random file id,
then frames of `u32 length | u8 final | 12-byte nonce | ciphertext+tag`.
Each frame authenticates (header, frame index, final flag) as associated
data, so reordered, spliced, truncated or extended files fail to open; memory
stays bounded by the frame size. Unencrypted sets hold plain zstd files.
Other keys (the manifest seal, the key id) are derived from NOVA_BACKUP_KEY
with HKDF-SHA256 under distinct info labels, never used raw.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from typing import BinaryIO

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nova_pipeline.backup.errors import BackupKeyError, SealError
from nova_pipeline.core import keys

MAGIC = b"NOVABK01"
FRAME_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
ZSTD_LEVEL = 1  # the backup competes with the snapshot for CPU (docs/performance.md)
_FRAME_HEAD = struct.Struct(">IB")
_NONCE_BYTES = 12
_TAG_BYTES = 16
ENCRYPTION_PARAMS = {
    "algorithm": "AES-256-GCM",
    "format": "nova-frames/1",
    "frame_bytes": FRAME_BYTES,
    "nonce_bytes": _NONCE_BYTES,
    "key_source": "NOVA_BACKUP_KEY",
}


def parse_key(text: str) -> bytes:
    """A 32-byte key from 64 hex characters or base64 of 32 bytes."""
    if (raw := keys.parse_key(text)) is None:
        raise BackupKeyError("NOVA_BACKUP_KEY must be 64 hex characters or base64 of 32 bytes")
    return raw


KEY_HINT = "set it to 64 hex characters (python -c 'import secrets; print(secrets.token_hex(32))')"


def key_from_env(required: bool = True) -> bytes | None:
    """The key from NOVA_BACKUP_KEY; BackupKeyError when it is missing and required."""
    text = os.environ.get("NOVA_BACKUP_KEY", "")
    if not text.strip():
        if required:
            raise BackupKeyError(f"NOVA_BACKUP_KEY is not set: backups are encrypted with it; {KEY_HINT}")
        return None
    return parse_key(text)


def derive_key(key: bytes, info: bytes, length: int = 32) -> bytes:
    """A subkey of NOVA_BACKUP_KEY for one purpose, named by `info` (HKDF-SHA256, no salt)."""
    return keys.derive_key(key, info, length)


def first_frame_opens(raw: BinaryIO, key: bytes) -> bool:
    """Whether `key` authenticates the first frame of an encrypted file (tells a wrong key from a damaged set)."""
    try:
        _FrameReader(raw, key, "")._next_frame()
    except SealError:
        return False
    return True


class _HashingWriter(io.RawIOBase):
    """Passes bytes through to `raw`, counting and hashing them."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.size, self.sha256 = raw, 0, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = bytes(b)
        self.raw.write(b)
        self.size += len(b)
        self.sha256.update(b)
        return len(b)


class _FrameWriter(io.RawIOBase):
    """Buffers compressed bytes and writes them as encrypted frames; close() writes the final frame."""

    def __init__(self, raw: BinaryIO, key: bytes):
        self.raw, self.aead, self.index = raw, AESGCM(key), 0
        self.header = MAGIC + os.urandom(16)
        self.buf = bytearray()
        raw.write(self.header)

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        while len(self.buf) > FRAME_BYTES:
            self._emit(bytes(self.buf[:FRAME_BYTES]), final=False)
            del self.buf[:FRAME_BYTES]
        return len(b)

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self.buf), final=True)
            self.buf.clear()
        super().close()

    def _emit(self, plain: bytes, final: bool) -> None:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self.aead.encrypt(nonce, plain, self.header + struct.pack(">QB", self.index, final))
        self.raw.write(_FRAME_HEAD.pack(len(sealed), final) + nonce + sealed)
        self.index += 1


class _FrameReader(io.RawIOBase):
    """Reads and authenticates frames, returning the compressed bytes inside."""

    def __init__(self, raw: BinaryIO, key: bytes, name: str):
        self.raw, self.aead, self.name, self.index = raw, AESGCM(key), name, 0
        self.header = raw.read(len(MAGIC) + 16)
        if len(self.header) != len(MAGIC) + 16 or not self.header.startswith(MAGIC):
            raise SealError(f"not an encrypted backup file or damaged header: {name}")
        self.pending, self.done = b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.pending and not self.done:
            self.pending = self._next_frame()
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def _next_frame(self) -> bytes:
        head = self.raw.read(_FRAME_HEAD.size)
        if len(head) < _FRAME_HEAD.size:
            raise SealError(f"truncated file (final frame missing): {self.name}")
        length, final = _FRAME_HEAD.unpack(head)
        body = self.raw.read(_NONCE_BYTES + length)
        if final > 1 or length < _TAG_BYTES or len(body) != _NONCE_BYTES + length:
            raise SealError(f"truncated or damaged file: {self.name}")
        try:
            plain = self.aead.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], self.header + struct.pack(">QB", self.index, final))
        except InvalidTag:
            raise SealError(f"wrong NOVA_BACKUP_KEY or damaged file: {self.name}") from None
        self.index += 1
        if final:
            self.done = True
            if self.raw.read(1):
                raise SealError(f"unexpected bytes after the final frame: {self.name}")
        return plain


class SealedWriter:
    """A write-only file that compresses and (with a key) encrypts into `raw`; sizes and hashes after close()."""

    def __init__(self, raw: BinaryIO, key: bytes | None):
        self.stored = _HashingWriter(raw)
        inner = _FrameWriter(self.stored, key) if key else self.stored
        self._zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(inner, closefd=True)
        self.plain_size, self.plain_sha256 = 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.plain_size += len(data)
        self.plain_sha256.update(data)
        return self._zstd.write(data)

    def close(self) -> dict:
        """Finish the file; returns plain/stored sizes and sha256 hex digests."""
        self._zstd.close()
        return {"plain_size": self.plain_size, "plain_sha256": self.plain_sha256.hexdigest(),
                "stored_size": self.stored.size, "stored_sha256": self.stored.sha256.hexdigest()}

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def open_sealed(raw: BinaryIO, key: bytes | None, name: str) -> BinaryIO:
    """A readable stream of the plain bytes of a sealed file (key None for unencrypted sets)."""
    inner = io.BufferedReader(_FrameReader(raw, key, name), CHUNK_BYTES) if key else raw
    return zstandard.ZstdDecompressor().stream_reader(inner, read_across_frames=False, closefd=False)


def iter_plain(raw: BinaryIO, key: bytes | None, name: str):
    """Yield the plain bytes of a sealed file in bounded chunks; SealError when it cannot be opened fully."""
    reader = open_sealed(raw, key, name)
    try:
        while chunk := reader.read(CHUNK_BYTES):
            yield chunk
    except zstandard.ZstdError as e:
        raise SealError(f"damaged compressed data in {name}: {e}") from None
