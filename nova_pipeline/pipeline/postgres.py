"""The PostgreSQL target before and after the tables' loads: schemas and tables first, keys, indexes, CHECKs
and foreign keys once every table holds its data. Each commits only while the run holds the migration lock."""

from __future__ import annotations

from nova_pipeline.appschema import app_objects
from nova_pipeline.core import run_lock
from nova_pipeline.load import postgres_ddl
from nova_pipeline.pipeline.context import Context, PostgresTarget, RunIds


def create_schema(ctx: Context, *, postgres: PostgresTarget, run: RunIds) -> tuple[list[str], str]:
    """Schemas and tables of the spec (unchanged ones kept), without the last run's triggers; (actions, the reason
    a table could not be created, or "": that table's own load fails with it, the others go on)."""
    failed = ""
    with postgres.connect(ctx.spec) as conn:
        try:
            actions = postgres_ddl.create_tables(conn, ctx.spec)
        except postgres_ddl.DDLError as e:
            actions, failed = e.actions, str(e)
        actions += app_objects.drop_triggers(conn)  # loading again must not fire the last run's triggers
        run_lock.assert_held(conn, run.lock_token)
        conn.commit()
    return actions, failed


def add_constraints(ctx: Context, *, postgres: PostgresTarget, run: RunIds) -> postgres_ddl.ConstraintReport:
    """Keys, indexes, CHECKs and foreign keys after the data (those the rows break NOT VALID), identity columns
    restarted where SQLite would go on (from the snapshot)."""
    with postgres.connect(ctx.spec) as conn:
        rep = postgres_ddl.add_constraints(conn, ctx.spec, source=ctx.local_snapshot())
        run_lock.assert_held(conn, run.lock_token)
        conn.commit()
    return rep
