"""What a pipeline call is handed: the run context (core/run_context.RunContext), the targets and the run's identity."""

from __future__ import annotations

from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging


class Context(Protocol):
    """The part of a RunContext the pipeline reads."""

    spec: Spec
    staging: Staging
    facts: FactsStore
    pending_facts: dict[str, Future]

    @property
    def snapshot_path(self) -> Path: ...

    def local_snapshot(self) -> Path: ...


class PostgresTarget(Protocol):
    """The PostgreSQL target (the Dagster resource is one)."""

    def url(self, spec: Spec | None = None) -> str: ...

    def connect(self, spec: Spec | None = None, **kwargs: Any) -> AbstractContextManager[psycopg.Connection]: ...


class MongoTarget(Protocol):
    """The MongoDB target (the Dagster resource is one)."""

    def database(self, spec: Spec) -> Any: ...

    def is_mock(self, spec: Spec) -> bool: ...


@dataclass(frozen=True)
class RunIds:
    """Whom a step's writes belong to: its run (quarantine rows), its migration (load records) and the migration
    lock's token every commit must hold (None outside `migrate`)."""

    run_id: str
    migration_id: str
    lock_token: str | None = None


def rate(rows: int, seconds: float) -> float:
    """Rows per second, 0 when no time was measured."""
    return round(rows / seconds, 1) if seconds > 0 else 0.0

