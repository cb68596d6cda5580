"""Sealed files: round trip, bounded frames, and detection of truncation, reordering and wrong keys."""

from __future__ import annotations

import base64
import io
import os
import struct

import pytest

from nova_pipeline.backup import crypto
from nova_pipeline.backup.errors import BackupKeyError, SealError

KEY = bytes(range(32))


def _seal(data: bytes, key: bytes | None = KEY) -> tuple[bytes, dict]:
    out = io.BytesIO()
    w = crypto.SealedWriter(out, key)
    for i in range(0, len(data), 70_000):
        w.write(data[i:i + 70_000])
    info = w.close()
    return out.getvalue(), info


def _open(blob: bytes, key: bytes | None = KEY) -> bytes:
    return b"".join(crypto.iter_plain(io.BytesIO(blob), key, "f.enc"))


def _frames(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each frame."""
    pos, out = len(crypto.MAGIC) + 16, []
    while pos < len(blob):
        length, _ = struct.unpack(">IB", blob[pos:pos + 5])
        out.append((pos, 5 + 12 + length))
        pos += 5 + 12 + length
    return out


@pytest.mark.parametrize(("text", "ok"), [
    (KEY.hex(), True), (KEY.hex().upper(), True), (base64.b64encode(KEY).decode(), True),
    (base64.urlsafe_b64encode(KEY).decode().rstrip("="), True), ("00" * 31, False), ("zz" * 32, False),
    (base64.b64encode(KEY[:16]).decode(), False), ("", False),
])
def test_parse_key(text, ok):
    if ok:
        assert crypto.parse_key(text) == KEY
    else:
        with pytest.raises(BackupKeyError, match="64 hex characters or base64 of 32 bytes") as e:
            crypto.parse_key(text)
        assert text not in str(e.value) or not text


def test_round_trip_across_frames_with_hashes():
    data = os.urandom(3 * crypto.FRAME_BYTES + 123)  # incompressible: several frames
    blob, info = _seal(data)
    assert len(_frames(blob)) == 4
    assert _open(blob) == data
    assert info["plain_size"] == len(data) and info["stored_size"] == len(blob)
    assert data[:64] not in blob


def test_unencrypted_is_plain_zstd():
    blob, _ = _seal(b"abc" * 1000, key=None)
    assert blob[:4] == b"\x28\xb5\x2f\xfd" and _open(blob, None) == b"abc" * 1000


def test_truncation_at_a_frame_boundary_is_detected():
    blob, _ = _seal(os.urandom(2 * crypto.FRAME_BYTES + 10))
    first_two = sum(length for _, length in _frames(blob)[:2]) + len(crypto.MAGIC) + 16
    with pytest.raises(SealError, match="truncated file .*: f.enc"):
        _open(blob[:first_two])


def test_reordered_frames_are_detected():
    blob, _ = _seal(os.urandom(2 * crypto.FRAME_BYTES + 10))
    (a, la), (b, lb), _ = _frames(blob)
    swapped = blob[:a] + blob[b:b + lb] + blob[a:a + la] + blob[b + lb:]
    with pytest.raises(SealError, match="wrong NOVA_BACKUP_KEY or damaged file: f.enc"):
        _open(swapped)


def test_wrong_key_and_trailing_bytes():
    blob, _ = _seal(b"secret" * 100)
    with pytest.raises(SealError, match="wrong NOVA_BACKUP_KEY or damaged file: f.enc"):
        _open(blob, bytes(32))
    with pytest.raises(SealError, match="unexpected bytes after the final frame"):
        _open(blob + b"x")


def test_key_from_env(monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    assert crypto.key_from_env(required=False) is None
    with pytest.raises(BackupKeyError, match="NOVA_BACKUP_KEY is not set"):
        crypto.key_from_env()
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY.hex())
    assert crypto.key_from_env() == KEY
