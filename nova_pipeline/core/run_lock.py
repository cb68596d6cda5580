"""The migration lock of a PostgreSQL target: one migration at a time, and no write after the lock is lost.

`migration_lock` takes a session advisory lock on a connection the migration
keeps open, and writes a fresh run token into `nova_meta.nova_lock` (one row
per database). Every transaction of the run that writes the target calls
`assert_held` just before it commits: it share-locks that row and checks that
it still holds this run's token *and* that the backend which wrote it still
holds the advisory lock. So:

- when the lock's backend dies (terminated, connection lost), the advisory
  lock goes with it and every later commit of the run fails with `LockLost`
  (its transaction rolls back);
- a new migration takes the free advisory lock and overwrites the token; its
  write waits for any commit of the old run in flight (the row is
  share-locked until that commit), so the new run's loads come after every
  write of the old one, and the old run cannot commit again;
- a killed run's stale token blocks nobody: it is only honoured while its
  backend holds the advisory lock.

The token travels with the Dagster runs of a migration as the run tag
`RUN_TOKEN_TAG` (nova_pipeline/runs.py); runs without it (UI, schedules) do
not check.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

META_SCHEMA = "nova_meta"
LOCK_TABLE = sql.Identifier(META_SCHEMA, "nova_lock")
RUN_TOKEN_TAG = "nova/run_token"
_LOCK_CLASS = 0x4E4F5641  # "NOVA": first key of the migration advisory lock
_LOCK_DDL = (
    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(META_SCHEMA)),
    sql.SQL("CREATE TABLE IF NOT EXISTS {} (database name PRIMARY KEY, run_token text NOT NULL,"
            " pid integer NOT NULL, taken_at timestamptz NOT NULL DEFAULT now())").format(LOCK_TABLE),
)
_GRANTED_LOCK = ("FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::int::oid"
                 " AND objid = %s::int::oid AND objsubid = 2"
                 " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


class MigrationLocked(RuntimeError):
    """Another migration of the same database holds the advisory lock."""


class LockLost(RuntimeError):
    """This run no longer holds the migration lock: it must not write the target."""


def lock_key(dbname: str) -> tuple[int, int]:
    """The advisory lock's two keys for a database."""
    return _LOCK_CLASS, zlib.crc32(dbname.encode()) & 0x7FFFFFFF


@dataclass
class RunLock:
    """A held migration lock: its run token and the connection whose session holds it."""

    token: str
    conn: psycopg.Connection

    def lost(self) -> str | None:
        """Why the lock is no longer held, or None while it is."""
        if self.conn.broken or self.conn.closed:
            return "its connection to PostgreSQL was lost"
        try:
            with self.conn.transaction():
                return lost_reason(self.conn, self.token)
        except psycopg.OperationalError:
            return "its connection to PostgreSQL was lost"


@contextmanager
def migration_lock(conn: psycopg.Connection) -> Iterator[RunLock]:
    """Hold the session advisory lock of this database's migration and record a new run token under it;
    raise MigrationLocked at once if another migration holds it.

    `conn` (autocommit) must stay open for the whole migration: the lock lives as long as its session.
    """
    db = conn.info.dbname
    key = lock_key(db)
    with conn.transaction():
        got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]
        holder = None if got else conn.execute(f"SELECT pid {_GRANTED_LOCK}", key).fetchone()
    if not got:
        raise MigrationLocked(f"another migration of {db} is running (pid {holder[0] if holder else '?'})")
    token = uuid.uuid4().hex
    try:
        with conn.transaction():
            if conn.execute("SELECT to_regclass(%s)", (LOCK_TABLE.as_string(conn),)).fetchone()[0] is None:
                for stmt in _LOCK_DDL:
                    conn.execute(stmt)
            # Waits for a commit in flight of a run that lost the lock (it holds the row share-locked).
            conn.execute(sql.SQL("INSERT INTO {} (database, run_token, pid) VALUES (current_database(), %s,"
                                 " pg_backend_pid()) ON CONFLICT (database) DO UPDATE SET run_token = excluded.run_token,"
                                 " pid = excluded.pid, taken_at = now()").format(LOCK_TABLE), (token,))
        yield RunLock(token, conn)
    finally:
        if not (conn.closed or conn.broken):
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
            except psycopg.OperationalError:  # the session (and with it the lock) is gone
                pass


def lost_reason(conn: psycopg.Connection, token: str) -> str | None:
    """Inside a transaction: share-lock the lock row until commit; why `token` no longer holds the lock, or None."""
    if conn.execute("SELECT to_regclass(%s)", (LOCK_TABLE.as_string(conn),)).fetchone()[0] is None:
        return "no migration lock is recorded in this database"
    row = conn.execute(sql.SQL("SELECT run_token, pid FROM {} WHERE database = current_database() FOR SHARE")
                       .format(LOCK_TABLE)).fetchone()
    if row is None or row[0] != token:
        return "another migration has taken it"
    if not conn.execute(f"SELECT EXISTS (SELECT 1 {_GRANTED_LOCK} AND pid = %s)",
                        (*lock_key(conn.info.dbname), row[1])).fetchone()[0]:
        return f"the session holding it (pid {row[1]}) has ended"
    return None


def assert_held(conn: psycopg.Connection, token: str | None) -> None:
    """Call inside a transaction right before it commits: raise LockLost (the caller rolls back) unless the
    run of `token` still holds the migration lock. No token: nothing to check (runs outside `migrate`)."""
    if token and (reason := lost_reason(conn, token)):
        raise LockLost(f"lost the migration lock: {reason}; this run stopped without writing more")
