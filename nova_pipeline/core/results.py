"""Check results shared by the PostgreSQL, MongoDB and Dagster layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ROW_RECONCILIATION = "row_reconciliation"
PRIMARY_KEY = "primary_key"
NOT_NULL = "not_null"
FOREIGN_KEYS = "foreign_keys"
CHECK_CONSTRAINTS = "check_constraints"
COLUMN_AGGREGATES = "column_aggregates"
CONTENT_HASH = "content_hash"
EXPECTATIONS = "expectations"
QUARANTINE_TOLERANCE = "quarantine_tolerance"
DOCUMENT_COUNT = "document_count"
VALIDATOR_COMPLIANCE = "validator_compliance"

# Checks whose failure must stop downstream assets.
BLOCKING = frozenset({ROW_RECONCILIATION, PRIMARY_KEY, CONTENT_HASH, QUARANTINE_TOLERANCE, DOCUMENT_COUNT})
POSTGRES_CHECKS = (ROW_RECONCILIATION, PRIMARY_KEY, NOT_NULL, FOREIGN_KEYS, CHECK_CONSTRAINTS, COLUMN_AGGREGATES,
                   CONTENT_HASH, EXPECTATIONS, QUARANTINE_TOLERANCE)
MONGO_CHECKS = (DOCUMENT_COUNT, COLUMN_AGGREGATES, VALIDATOR_COMPLIANCE, QUARANTINE_TOLERANCE)

Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one table; `detail` is one line a user can act on."""

    table: str
    check: str
    passed: bool
    detail: str
    failing_keys: list[Any] = field(default_factory=list)
    severity: Severity = "ERROR"
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form used by the report and the CLI."""
        return asdict(self)


def format_key(key: dict[str, Any]) -> str:
    """`id=4711` / `a=1, b='x'` for messages."""
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in key.items())
