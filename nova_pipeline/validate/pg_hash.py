"""PostgreSQL's own 64-bit hash functions, vectorised with numpy.

`hashint8extended`, `hashfloat8extended`, `timestamp_hash_extended` and
`hashtextextended` are built into PostgreSQL (src/common/hashfn.c: Bob
Jenkins' lookup3, in its little-endian form). Computing the very same values
over Arrow batches lets the content hash run inside PostgreSQL as a cheap
native expression while the source side stays exact and column-wise.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MASK64 = (1 << 64) - 1
_INIT = np.uint32(0x9E3779B9 + 3923095)
_BYTES_PER_SLICE = 1 << 16  # rows gathered at once by hash_bytes (bounds its scratch memory)
_CANONICAL_NAN = np.array([0x7FF8000000000000], np.uint64).view(np.float64)[0]


def _rot(x: np.ndarray, k: int) -> np.ndarray:
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def _mix(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    a -= c; a ^= _rot(c, 4); c += b  # noqa: E702 (the lookup3 macro, line for line)
    b -= a; b ^= _rot(a, 6); a += c  # noqa: E702
    c -= b; c ^= _rot(b, 8); b += a  # noqa: E702
    a -= c; a ^= _rot(c, 16); c += b  # noqa: E702
    b -= a; b ^= _rot(a, 19); a += c  # noqa: E702
    c -= b; c ^= _rot(b, 4); b += a  # noqa: E702


def _final(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    c ^= b; c -= _rot(b, 14)  # noqa: E702
    a ^= c; a -= _rot(c, 11)  # noqa: E702
    b ^= a; b -= _rot(a, 25)  # noqa: E702
    c ^= b; c -= _rot(b, 16)  # noqa: E702
    a ^= c; a -= _rot(c, 4)  # noqa: E702
    b ^= a; b -= _rot(a, 14)  # noqa: E702
    c ^= b; c -= _rot(b, 24)  # noqa: E702
    return (b.astype(np.uint64) << np.uint64(32)) | c.astype(np.uint64)


def _start(lengths: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = _INIT + lengths.astype(np.uint32)
    b, c = a.copy(), a.copy()
    seed &= MASK64
    if seed:
        a += np.uint32(seed >> 32)
        b += np.uint32(seed & 0xFFFFFFFF)
        _mix(a, b, c)
    return a, b, c


def hash_uint32(k: np.ndarray, seed: int) -> np.ndarray:
    """`hash_uint32_extended` of every uint32 (as uint64)."""
    a, b, c = _start(np.full(len(k), 4, np.uint32), seed)
    a += k.astype(np.uint32)
    return _final(a, b, c)


def hashint8(v: np.ndarray, seed: int) -> np.ndarray:
    """`hashint8extended(v, seed)` (also `timestamp_hash_extended` of the internal µs since 2000)."""
    v = v.astype(np.int64, copy=False)
    lo, hi = (v & 0xFFFFFFFF).astype(np.uint32), (v >> 32).astype(np.uint32)
    return hash_uint32(lo ^ np.where(v >= 0, hi, ~hi), seed)


def hashfloat8(v: np.ndarray, seed: int) -> np.ndarray:
    """`hashfloat8extended(v, seed)`: ±0 hash to the seed, every NaN alike."""
    v = np.where(np.isnan(v), _CANONICAL_NAN, v.astype(np.float64))
    words = np.ascontiguousarray(v).view("<u4").reshape(-1, 2)
    a, b, c = _start(np.full(len(v), 8, np.uint32), seed)
    a += words[:, 0]
    b += words[:, 1]
    return np.where(v == 0, np.uint64(seed & MASK64), _final(a, b, c))


def _words(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The three little-endian uint32 words at each byte position (data is zero-padded by 12 bytes)."""
    return np.ascontiguousarray(data[pos[:, None] + np.arange(12)]).view("<u4")


def hash_bytes(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """`hash_bytes_extended` of every byte string data[start:start+length] (data zero-padded by 12 bytes)."""
    out = np.empty(len(starts), np.uint64)
    for lo in range(0, len(starts), _BYTES_PER_SLICE):
        s, n = starts[lo:lo + _BYTES_PER_SLICE], lengths[lo:lo + _BYTES_PER_SLICE]
        a, b, c = _start(n, seed)
        blocks = n // 12
        for r in range(int(blocks.max(initial=0))):
            live = np.nonzero(blocks > r)[0]
            w = _words(data, s[live] + 12 * r)
            la, lb, lc = a[live] + w[:, 0], b[live] + w[:, 1], c[live] + w[:, 2]
            _mix(la, lb, lc)
            a[live], b[live], c[live] = la, lb, lc
        tail = n - 12 * blocks
        w = _words(data, s + 12 * blocks) & np.where(np.arange(12) < tail[:, None], 0xFF, 0).astype(np.uint8).view("<u4")
        a += w[:, 0]
        b += w[:, 1]
        c += w[:, 2] << np.uint32(8)  # the lowest byte of c is reserved in PostgreSQL's layout
        out[lo:lo + _BYTES_PER_SLICE] = _final(a, b, c)
    return out


def hashtext(arr: pa.Array, seed: int) -> np.ndarray:
    """`hashtextextended(v, seed)` of every string (deterministic collation: the UTF-8 bytes)."""
    arr = arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, np.int64)[arr.offset:arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    padded = np.concatenate([raw[:offsets[-1] if len(offsets) else 0], np.zeros(12, np.uint8)])
    return hash_bytes(padded, offsets[:-1], np.diff(offsets), seed)
