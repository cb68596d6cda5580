"""Dagster's SQLite instance storage, with the event log's database connections kept open.

Dagster's SqliteEventLogStorage builds a new SQLAlchemy engine, connection and
statement cache for every event it stores (each event goes to its run's
database, asset and check events to the index database too), and for every
asset and check event asks, through one more new engine, whether an index
table exists. A migration stores many such rows, and this per-event set-up
was the largest fixed cost of a run (docs/performance.md). Here each database keeps one
engine (at most MAX_ENGINES, least recently used closed first), in WAL mode
with `synchronous=NORMAL` (a commit no longer waits for an fsync; SQLite's
recommended setting for WAL: the file stays consistent, only the last events
may be lost on a power cut), and a table once found is remembered (Dagster's
schema migrations add tables, never drop them). Rows, files and locking are
Dagster's own, so the webserver and daemon read the same files.
dagster.yaml (the one beside this module) selects it:

    storage:
      custom:
        module: nova_pipeline.orchestration.dagster_storage
        class: NovaSqliteStorage
        config: {base_dir: {env: DAGSTER_HOME}}

`dagster_instance()` opens the instance the CLI records its runs in: the one of a DAGSTER_HOME the user set
(any storage its dagster.yaml names, PostgreSQL included; that file is never written), else the default home
data/.nova/dagster, created with the dagster.yaml beside this module. Its runs are filed under the code
location, so the UI shows them with those it launched (code_location.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from nova_pipeline.core.file_modes import private_dir
from nova_pipeline.orchestration.code_location import file_runs_under_code_location

MAX_ENGINES = 8  # a run's database, the index, and a few runs read by a long-lived webserver


def _no_fsync_per_commit(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage that reuses one engine (one open connection) per database file."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables_found: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables_found and super().has_table(table_name):
            self._tables_found.add(table_name)
        return table_name in self._tables_found

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), pool_size=1, max_overflow=2,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", _no_fsync_per_commit)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > MAX_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_engines()  # before the run databases are deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


class NovaSqliteStorage(DagsterSqliteStorage):
    """Dagster's `storage: sqlite` layout under `base_dir`, with the pooled event log."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> NovaSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


DEFAULT_DAGSTER_HOME = Path("data/.nova/dagster")
INSTANCE_YAML = Path(__file__).with_name("dagster.yaml").read_text()  # the default home's


def dagster_instance() -> DagsterInstance:
    """The instance of the user's DAGSTER_HOME as its dagster.yaml configures it, or of the default home
    (created with INSTANCE_YAML when DAGSTER_HOME is unset), opened anew: a command keeps the one it opened
    (orchestration/runs.Runner.instance)."""
    user_home = os.environ.get("DAGSTER_HOME")
    home = Path(user_home or DEFAULT_DAGSTER_HOME).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    private_dir(home)  # run storage and compute logs hold row values and errors: owner-only
    # Two commands starting at once in a fresh directory must not both create the storage's tables.
    with open(home / ".create.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not user_home and not (home / "dagster.yaml").exists():
            (home / "dagster.yaml").write_text(INSTANCE_YAML)
        instance = file_runs_under_code_location(DagsterInstance.get())
        if not (home / ".storage-created").exists():
            with contextlib.redirect_stdout(io.StringIO()):  # upgrade() prints what it creates
                instance.upgrade()
            (home / ".storage-created").touch()
    return instance
