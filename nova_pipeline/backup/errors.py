"""Backup errors: one line for users, never containing secrets."""


class BackupError(RuntimeError):
    """A backup operation cannot proceed (bad input, unreachable tool, damaged set)."""


class BackupKeyError(BackupError):
    """NOVA_BACKUP_KEY is missing or malformed (the message never contains the key)."""


class WrongKeyError(BackupKeyError):
    """NOVA_BACKUP_KEY is not the key a set was written with; nothing was checked or recorded."""


class UnsealedSetError(BackupError):
    """A set written before manifests were sealed, used without accept_unsealed / --accept-unsealed."""


class SealError(BackupError):
    """A sealed file cannot be opened: wrong key, damaged, truncated or reordered bytes."""


class VerificationError(BackupError):
    """A set failed verification, so nothing was restored."""
