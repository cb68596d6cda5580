"""Retention: the pure decision (parametrized) and the deletion on disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from nova_pipeline.backup import retention
from nova_pipeline.backup.retention import SetAge, apply_retention, sets_to_delete
from nova_pipeline.backup.sets import FORMAT, list_sets

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)


def _sets(spec: str) -> list[SetAge]:
    """'40v 20u 3v' → sets aged 40 days verified, 20 days unverified, 3 days verified; ids s0, s1, …"""
    return [SetAge(f"s{i}", NOW - timedelta(days=int(tok[:-1])), tok[-1] == "v") for i, tok in enumerate(spec.split())]


@pytest.mark.parametrize(("spec", "days", "keep", "deleted"), [
    ("40v 20v 3v", 30, 1, ["s0"]),                  # expired and a newer verified set exists
    ("40v 35v 31v", 30, 1, ["s1", "s0"]),           # all expired: the newest verified survives
    ("40v 35v 31v", 30, 2, ["s0"]),                 # keep-last-K verified
    ("40v 20u 3u", 30, 1, []),                      # no newer verified set: the old verified one stays
    ("40u 35v 3u", 30, 1, ["s0"]),                  # expired unverified set, newer verified exists
    ("40v 35u", 30, 3, []),                         # the last verified set is never deleted
    ("10v 5v 1v", 30, 1, []),                       # nothing expired
    ("40u 35u", 30, 1, []),                         # nothing verified at all: delete nothing
    ("40v 35v", 0, 1, ["s0"]),
    ("", 30, 1, []),
])
def test_sets_to_delete(spec, days, keep, deleted):
    assert sets_to_delete(_sets(spec), NOW, days, keep) == deleted


def test_keep_last_zero_still_keeps_newest_verified():
    assert sets_to_delete(_sets("50v 40v"), NOW, 1, 0) == ["s0"]


def _write_set(root, set_id: str, created: datetime, ok: bool | None, manifest: bool = True):
    d = root / set_id
    d.mkdir(parents=True)
    if manifest:
        check = None if ok is None else {"ok": ok, "checked_at": created.isoformat()}
        (d / "manifest.json").write_text(json.dumps({"format": FORMAT, "set_id": set_id, "created_at": created.isoformat(),
                                                     "files": [], "verification": check}))


def test_apply_retention_deletes_only_what_the_policy_says(tmp_path):
    root = tmp_path / "b"
    _write_set(root, "old-verified", NOW - timedelta(days=40), True)
    _write_set(root, "old-failed", NOW - timedelta(days=39), False)
    _write_set(root, "mid-verified", NOW - timedelta(days=35), True)
    _write_set(root, "new-unverified", NOW - timedelta(days=1), None)
    _write_set(root, "incomplete", NOW - timedelta(days=90), None, manifest=False)
    assert apply_retention(str(root), 30, 1, now=NOW, dry_run=True) == [
        str(root / "old-verified"), str(root / "old-failed")]
    assert (root / "old-verified").exists()
    apply_retention(str(root), 30, 1, now=NOW)
    assert sorted(p.name for p in root.iterdir()) == ["incomplete", "mid-verified", "new-unverified"]
    assert [s.set_id for s in list_sets(str(root))] == ["mid-verified", "new-unverified"]


def test_retention_days_env(monkeypatch):
    monkeypatch.delenv("BACKUP_RETENTION_DAYS", raising=False)
    assert retention.retention_days_setting(7) == 7
    monkeypatch.setenv("BACKUP_RETENTION_DAYS", "30")
    assert retention.retention_days_setting(7) == 30
    monkeypatch.setenv("BACKUP_RETENTION_DAYS", "thirty")
    with pytest.raises(Exception, match="BACKUP_RETENTION_DAYS must be a whole number"):
        retention.retention_days_setting(7)
