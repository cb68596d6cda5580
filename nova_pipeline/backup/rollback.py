"""Rollback: return the targets to the last pre-migration set, keeping a safety backup and a history."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nova_pipeline.backup.create import backup_dest, create_backup
from nova_pipeline.backup.crypto import KEY_HINT, key_from_env
from nova_pipeline.backup.errors import BackupError, BackupKeyError, UnsealedSetError, VerificationError, WrongKeyError
from nova_pipeline.backup.restore import restore
from nova_pipeline.backup.sets import BackupSet, list_sets, sweep_leftovers
from nova_pipeline.backup.verify import authenticate, set_key, verify_set
from nova_pipeline.core import connections
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.target_state import changed_tables

SAFETY_LABEL = "pre-rollback"


def last_pre_migration(dest: str, key: bytes | None = None, *, accept_unsealed: bool = False) -> BackupSet:
    """The newest pre-migration set under dest whose manifest is authenticated.

    Every manifest under dest is checked first, since an edited one (a
    pre-migration flag cleared, a date moved) could hide the right set: one
    that fails its seal stops the choice, naming the set. Sets sealed with
    another key, and sets from before the seal unless accept_unsealed, are not
    candidates. `key` defaults to NOVA_BACKUP_KEY (needed when a set is encrypted).
    """
    key = key or key_from_env(required=False)
    candidates, unsealed = [], []
    for s in list_sets(dest):
        try:
            problem, _ = authenticate(s, set_key(s, key), accept_unsealed=accept_unsealed)
        except WrongKeyError:
            continue
        except UnsealedSetError:
            unsealed += [s] if s.pre_migration else []
            continue
        if problem:
            raise VerificationError(f"set {s.set_id}: {problem}; refusing to choose a rollback target, nothing changed")
        if s.pre_migration:
            candidates.append(s)
    if not candidates:
        hint = (f"; {len(unsealed)} set(s) from before manifests were sealed (newest {unsealed[-1].set_id}) "
                "need --accept-unsealed") if unsealed else ""
        raise BackupError(f"no pre-migration backup set under {dest}{hint}")
    return candidates[-1]


def rollback(spec: Spec, postgres_url: str, mongo_uri: str | None, reason: str, dest: str | None = None, *,
             key: bytes | None = None, accept_unsealed: bool = False) -> dict[str, Any]:
    """Restore the last pre-migration set into the targets; returns the history entry.

    Order: sweep leftovers of killed backups, find and verify that set (nothing
    changes if it or any manifest under dest is damaged or edited), take a
    safety backup of the current targets, restore, and append
    {time, reason, restored_set, safety_set} to <reports>/history.json.
    Back to an empty baseline without NOVA_BACKUP_KEY there is no safety set
    (safety_set None): allowed while the PostgreSQL tables hold what the
    migration loaded (the source can load it again), refused otherwise.
    """
    if not reason.strip():
        raise BackupError("rollback needs a reason")
    dest = backup_dest(spec, dest)
    sweep_leftovers(dest)
    target = last_pre_migration(dest, key, accept_unsealed=accept_unsealed)
    key = set_key(target, key)
    check = verify_set(target.location, key, accept_unsealed=accept_unsealed)
    if not check["ok"]:
        raise VerificationError(f"pre-migration set {target.set_id} failed verification, nothing changed: {check['problems'][0]}")
    # An unencrypted pre-migration set was an explicit choice; the safety set follows the key when there is one.
    safety_key = key or key_from_env(required=False)
    if safety_key is None and target.manifest.get("baseline"):
        _refuse_changed_without_key(spec, postgres_url)
        safety = None
    else:
        safety = create_backup(spec, dest=dest, postgres_url=postgres_url, mongo_uri=mongo_uri, key=safety_key,
                               no_encrypt=safety_key is None, label=SAFETY_LABEL).location
    restore(target.location, postgres_url, mongo_uri, key=key, mongo_database=spec.targets.mongo.database
            if spec.targets.mongo else None, accept_unsealed=accept_unsealed)
    entry = {"event": "rollback", "time": datetime.now(UTC).isoformat(), "reason": reason,
             "restored_set": target.location, "safety_set": safety}
    append_history(spec.resolve(spec.reports) / "history.json", entry)
    return entry


def _refuse_changed_without_key(spec: Spec, postgres_url: str | None) -> None:
    if not postgres_url or spec.targets.postgres is None:
        return
    with connections.connect_postgres(postgres_url, autocommit=True) as conn:
        changed = changed_tables(conn, spec)
    if changed:
        raise BackupKeyError(f"rollback: tables changed since the migration ({changed}) and NOVA_BACKUP_KEY is not "
                             f"set, so no safety backup can be taken: {KEY_HINT}")


def append_history(path: Path, entry: dict[str, Any]) -> None:
    """Append one entry to a JSON list file, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.exists() else []
    if not isinstance(history, list):
        raise BackupError(f"{path}: expected a JSON list of history entries")
    history.append(entry)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(history, indent=2) + "\n")
    tmp.replace(path)
