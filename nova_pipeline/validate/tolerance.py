"""Quarantine tolerance: the share of source rows a table may leave in quarantine (any target)."""

from __future__ import annotations

from typing import Any

from nova_pipeline.core.spec import Spec
from nova_pipeline.core import results as r
from nova_pipeline.core.results import CheckResult
from nova_pipeline.validate.source_facts import source_rows


def check_quarantine_tolerance(spec: Spec, table: str, facts: dict[str, Any]) -> CheckResult:
    """Quarantined rows against the table's (or spec's) tolerance; no tolerance set means any number is accepted."""
    ts, q, src = spec.tables[table], facts["quarantined_rows"], source_rows(facts)
    limit_rows = ts.max_quarantined_rows if ts.max_quarantined_rows is not None else spec.max_quarantined_rows
    share = q / src if src else 0.0
    meta = {"quarantined_rows": q, "share": share, "max_rows": limit_rows, "max_share": ts.max_quarantined_share,
            "top_reasons": facts.get("quarantine_reasons", {})}
    over = []
    if limit_rows is not None and q > limit_rows:
        over.append(f"{q} row(s) quarantined > max_quarantined_rows {limit_rows}")
    if ts.max_quarantined_share is not None and share > ts.max_quarantined_share:
        over.append(f"share {share:.4%} > max_quarantined_share {ts.max_quarantined_share:.4%}")
    if not over:
        limits = "no tolerance set" if limit_rows is None and ts.max_quarantined_share is None else "within tolerance"
        return CheckResult(table, r.QUARANTINE_TOLERANCE, True, f"{q} row(s) quarantined, {limits}", metadata=meta)
    reasons = "; ".join(f"{k} ×{n}" for k, n in list(meta["top_reasons"].items())[:3])
    return CheckResult(table, r.QUARANTINE_TOLERANCE, False,
                       f"{r.QUARANTINE_TOLERANCE}: {', '.join(over)}; top reasons: {reasons}; "
                       f"see staging/quarantine/{table}", metadata=meta)
