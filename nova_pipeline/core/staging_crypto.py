"""Encrypted staging (`staging_encryption: true`): Parquet modular encryption of every staged file.

Each file gets its own random data key (AES-GCM, footer and every column encrypted, so even the schema
and statistics are unreadable); the data keys are wrapped with AES-256-GCM under a key derived by HKDF
from NOVA_STAGING_KEY, or from NOVA_BACKUP_KEY when that is not set. Readers recognise an encrypted file
by its magic bytes (`PARE`) and decrypt it with the same key, whatever the spec says.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nova_pipeline.core.keys import derive_key, parse_key

KEY_VARS = ("NOVA_STAGING_KEY", "NOVA_BACKUP_KEY")
ENCRYPTED_MAGIC = b"PARE"
_INFO = b"nova-pipeline staging parquet kek v1"
_FOOTER_KEY = "nova-staging"


class StagingKeyError(ValueError):
    """The staging key is missing, malformed or not the one staged files were written with (one line)."""


def staging_key() -> bytes:
    """The key-encryption key: HKDF of NOVA_STAGING_KEY (else NOVA_BACKUP_KEY); StagingKeyError without one."""
    for var in KEY_VARS:
        if text := os.environ.get(var, "").strip():
            if (key := parse_key(text)) is None:
                raise StagingKeyError(f"{var} must be 64 hex characters or base64 of 32 bytes")
            return derive_key(key, _INFO)
    raise StagingKeyError("encrypted staging needs a key: set NOVA_STAGING_KEY (or NOVA_BACKUP_KEY)")


class _LocalKms(pe.KmsClient):
    """Wraps data keys with one local AES-256-GCM key (no KMS server)."""

    def __init__(self, key: bytes):
        super().__init__()
        self._aead = AESGCM(key)

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, key_bytes, master_key_identifier.encode())).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        raw = base64.b64decode(wrapped_key)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], master_key_identifier.encode())
        except InvalidTag:
            raise StagingKeyError("wrong key: NOVA_STAGING_KEY (else NOVA_BACKUP_KEY) is not the key it was "
                                  "written with") from None


@lru_cache(maxsize=4)
def _factory(key: bytes) -> tuple[pe.CryptoFactory, pe.KmsConnectionConfig]:
    # The token names the key, so the factory's client cache never hands one key's client to another key.
    config = pe.KmsConnectionConfig(key_access_token=hashlib.sha256(key).hexdigest())
    return pe.CryptoFactory(lambda _config: _LocalKms(key)), config


def encryption_properties():
    """Properties for a ParquetWriter: a new data key for the file, footer and all columns encrypted."""
    factory, config = _factory(staging_key())
    return factory.file_encryption_properties(config, pe.EncryptionConfiguration(
        footer_key=_FOOTER_KEY, uniform_encryption=True, plaintext_footer=False, double_wrapping=False,
        data_key_length_bits=256))


def decryption_properties():
    """Properties that open files written with encryption_properties() under the same key."""
    factory, config = _factory(staging_key())
    return factory.file_decryption_properties(config, pe.DecryptionConfiguration())


def dataset_decryption_config():
    """The same, for pyarrow.dataset (ParquetFragmentScanOptions.decryption_config)."""
    import pyarrow.dataset as pads

    factory, config = _factory(staging_key())
    return pads.ParquetDecryptionConfig(factory, config, pe.DecryptionConfiguration())


def is_encrypted(f) -> bool:
    """Whether the open Parquet file `f` (a pyarrow NativeFile) has an encrypted footer."""
    head = f.read_at(4, 0)
    return head == ENCRYPTED_MAGIC


def open_parquet(f, path: str) -> pq.ParquetFile:
    """A ParquetFile of the open file `f`, decrypted when it is encrypted; StagingKeyError (naming `path`)
    when the key is missing or wrong."""
    if not is_encrypted(f):
        return pq.ParquetFile(f)
    try:
        return pq.ParquetFile(f, decryption_properties=decryption_properties())
    except StagingKeyError as e:
        raise StagingKeyError(f"{path}: encrypted staged file: {e}") from None
