"""Retention: which sets to delete, and the deletion.

Policy: keep every set younger than `retention_days` and the newest
`keep_last` verified sets; an expired set is deleted only when a newer
verified set exists; the newest verified set is never deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nova_pipeline.backup.errors import BackupError
from nova_pipeline.backup.sets import filesystem, list_sets


@dataclass(frozen=True)
class SetAge:
    """What the retention decision needs to know about one set."""

    set_id: str
    created_at: datetime
    verified: bool


def sets_to_delete(sets: list[SetAge], now: datetime, retention_days: int, keep_last: int) -> list[str]:
    """Ids of the sets the policy deletes (pure; order of `sets` does not matter)."""
    newest_first = sorted(sets, key=lambda s: (s.created_at, s.set_id), reverse=True)
    verified = [s for s in newest_first if s.verified]
    keep = {s.set_id for s in verified[:max(keep_last, 1)]}
    cutoff = now - timedelta(days=retention_days)
    doomed = []
    for s in newest_first:
        expired = s.created_at < cutoff
        newer_verified = any(v.created_at > s.created_at for v in verified)
        if expired and newer_verified and s.set_id not in keep:
            doomed.append(s.set_id)
    return doomed


def retention_days_setting(default: int) -> int:
    """BACKUP_RETENTION_DAYS when set, else the spec's value."""
    raw = os.environ.get("BACKUP_RETENTION_DAYS", "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise BackupError(f"BACKUP_RETENTION_DAYS must be a whole number of days, got {raw!r}")
    return int(raw)


def apply_retention(dest: str, retention_days: int, keep_last: int, *, now: datetime | None = None,
                    dry_run: bool = False) -> list[str]:
    """Delete the sets under dest the policy rejects; returns their locations. Incomplete sets are not touched."""
    sets = list_sets(dest)
    ages = [SetAge(s.set_id, s.created_at, s.state == "verified") for s in sets]
    doomed = set(sets_to_delete(ages, now or datetime.now(UTC), retention_days, keep_last))
    removed = []
    for s in sets:
        if s.set_id in doomed:
            if not dry_run:
                fs, path = filesystem(s.location)
                fs.rm(path, recursive=True)
            removed.append(s.location)
    return removed
