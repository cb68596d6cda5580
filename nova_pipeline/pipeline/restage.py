"""Checks after the staging is gone: the source staged afresh in a private temporary directory."""

from __future__ import annotations

import tempfile
import uuid

from nova_pipeline.core.results import CheckResult
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import Spec
from nova_pipeline.pipeline import source, table
from nova_pipeline.validate import run_all_checks


def checks_on_fresh_staging(spec: Spec, pg_url: str | None, mongo_uri: str | None) -> list[CheckResult]:
    """Every check of `validate` against the source as it is now: a new snapshot, exported and transformed into a
    temporary directory (owner-only, removed afterwards), so a migration's removed plaintext staging and its kept
    quarantine stay as they are."""
    with tempfile.TemporaryDirectory(prefix="nova-validate-") as tmp:
        fresh = spec.model_copy(update={"staging": tmp})
        ctx = RunContext.for_spec(fresh)
        source.take_snapshot(ctx)
        run_id = f"validate-{uuid.uuid4()}"
        for name, _ in fresh.table_items():
            table.export_table(ctx, name)
            table.transform_table(ctx, name, run_id)
        return run_all_checks(fresh, pg_url, mongo_uri, ctx.staging)
