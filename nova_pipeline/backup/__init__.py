"""Backup sets of the targets and the source: create, verify, list, restore, retention, rollback.

Engine code: nothing here imports Dagster.
"""

from nova_pipeline.backup.create import PRE_MIGRATION, backup_dest, create_backup, target_schemas
from nova_pipeline.backup.errors import (BackupError, BackupKeyError, SealError, UnsealedSetError, VerificationError,
                                        WrongKeyError)
from nova_pipeline.backup.restore import restore
from nova_pipeline.backup.retention import SetAge, apply_retention, sets_to_delete
from nova_pipeline.backup.rollback import last_pre_migration, rollback
from nova_pipeline.backup.sets import BackupSet, list_sets, load_set
from nova_pipeline.backup.verify import verify_set

__all__ = [
    "PRE_MIGRATION", "BackupError", "BackupKeyError", "BackupSet", "SealError", "SetAge", "apply_retention",
    "backup_dest", "create_backup", "last_pre_migration", "list_sets", "load_set", "restore", "rollback",
    "sets_to_delete", "target_schemas", "UnsealedSetError", "VerificationError", "verify_set", "WrongKeyError",
]
