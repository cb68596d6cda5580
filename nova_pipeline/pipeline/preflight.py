"""What must hold before a migration runs, checked from its run context: the source and the staging key
(`check_inputs`), then the targets, the migration lock and the target tables' state (`clear_targets`). Each check
raises before anything is written (SourceError, ValueError of the key, TargetUnreachable, MigrationLocked,
TargetChanged)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from nova_pipeline.core import connections, run_lock, target_state
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import Spec
from nova_pipeline.extract import snapshot


def check_inputs(ctx: RunContext, *, resume: bool = False) -> None:
    """The source (unless resuming: its snapshot is taken) holds the spec's tables and reads as SQLite; the staging
    key, when staging is encrypted, opens the area."""
    if not resume:  # a missing, empty, corrupt or locked source, or one without the spec's tables
        snapshot.check_source(ctx.source, [name for name, _ in ctx.spec.table_items()])
    if ctx.spec.staging_encryption:
        ctx.staging.check_key()


def resolve_targets(spec: Spec, postgres_url: str | None, mongo_uri: str | None, *, target: str = "both",
                    mock_mongo_fallback: bool = False) -> tuple[str | None, str | None]:
    """URLs of the targets the spec uses (of `target` only), checked reachable (TargetUnreachable otherwise)."""
    pg, mongo = None, None
    if spec.table_items("postgres") and target != "mongo":
        pg = connections.postgres_url(spec, postgres_url)
        connections.connect_postgres(pg).close()
    if spec.table_items("mongo") and target != "postgres":
        mongo = connections.mongo_uri(spec, mongo_uri)
        if not mongo and mock_mongo_fallback:
            mongo = "mongomock://nova-demo"
        if not mongo:
            raise connections.TargetUnreachable(
                "no MongoDB configured for the spec's mongo tables: pass --mongo-uri or set NOVA_MONGO_URI")
        connections.ping_mongo(connections.mongo_client(mongo), mongo)
    return pg, mongo


@dataclass(frozen=True)
class ClearedTargets:
    """The targets a migration writes (None: not written), the migration lock it holds (None without PostgreSQL)
    and the report's notes about them."""

    postgres_url: str | None
    mongo_uri: str | None
    lock: run_lock.RunLock | None
    notes: list[str]


def clear_targets(ctx: RunContext, stack: ExitStack, postgres_url: str | None, mongo_uri: str | None, *,
                  target: str = "both", force: bool = False, mock_mongo_fallback: bool = False) -> ClearedTargets:
    """Resolve and reach the targets, hold PostgreSQL's migration lock in `stack`, and find the target tables
    changed since nova-pipeline last wrote them (TargetChanged unless `force`, which replaces them)."""
    pg, mongo = resolve_targets(ctx.spec, postgres_url, mongo_uri, target=target,
                                mock_mongo_fallback=mock_mongo_fallback)
    lock, notes = None, []
    if pg:
        conn = stack.enter_context(connections.connect_postgres(pg, autocommit=True))
        lock = stack.enter_context(run_lock.migration_lock(conn))
        if target != "mongo" and (changed := target_state.changed_tables(conn, ctx.spec)):
            if not force:
                raise target_state.TargetChanged(
                    f"target tables changed since the last migration by nova-pipeline: {changed}. Pass --force "
                    "to replace them; a pre-migration backup is taken first (unless --no-backup)")
            notes.append(f"--force: replaced target tables changed since the last migration: {changed}")
    return ClearedTargets(pg, mongo, lock, notes)
