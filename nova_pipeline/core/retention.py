"""Retention of plaintext: what a migration leaves on disk or in the bucket, and removing it.

The staging area holds the source's rows in plaintext (raw and clean Parquet, the snapshot, cached facts).
After a successful, validated migration it is removed unless the spec says `keep_staging: true`; a
failed run keeps everything `resume` needs. Quarantined rows stay until `nova-pipeline clean --quarantine`:
they are what the user still has to fix.
"""

from __future__ import annotations

import shutil

from nova_pipeline.core.scan_cache import FACTS_DIR
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import SNAPSHOT_DIR, for_spec, local_area

PLAINTEXT = ("raw", "clean", SNAPSHOT_DIR, FACTS_DIR)


def remove_plaintext(spec: Spec, quarantine: bool = False) -> list[str]:
    """Remove the spec source's staged Parquet, snapshot (also this machine's copy of an object-store area's)
    and cached facts, and with `quarantine` its quarantine Parquet; the locations removed. The caller holds
    the area (snapshot.exclusive_area)."""
    staging = for_spec(spec)
    folders = PLAINTEXT + (("quarantine",) if quarantine else ())
    removed = [staging.location(f) for f in folders if staging.remove(f)]
    local_copy = local_area(spec) / SNAPSHOT_DIR
    if not staging.is_local and local_copy.exists():
        shutil.rmtree(local_copy)
        removed.append(str(local_copy))
    return removed


def quarantine_left(spec: Spec) -> str | None:
    """Where quarantined rows of the spec's source are staged, or None when there are none."""
    staging = for_spec(spec)
    return staging.location("quarantine") if any(staging.files("quarantine", t) for t, _ in spec.table_items()) else None


def after_success(spec: Spec) -> str:
    """Apply the spec's retention after a successful migration; the line the report shows."""
    if spec.keep_staging:
        return (f"staging kept at {for_spec(spec).location()} (keep_staging: true): raw and clean Parquet and the "
                "source snapshot stay in plaintext until `nova-pipeline clean`")
    remove_plaintext(spec)
    line = "plaintext staging and snapshot removed"
    if left := quarantine_left(spec):
        line += f"; quarantined rows stay in {left} until `nova-pipeline clean --quarantine`"
    return line
