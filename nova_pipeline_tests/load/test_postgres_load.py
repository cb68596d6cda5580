"""postgres_load against a real PostgreSQL: faithful round-trip, idempotent re-loads, windows, retries, locks, quarantine."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import date, datetime, time as dtime, timezone
from decimal import Decimal
from uuid import UUID

import psycopg
import pyarrow as pa
import pytest

from nova_pipeline.load.postgres_ddl import add_constraints, create_tables
from nova_pipeline.load.postgres_load import LoadError, load_table, partition_window, store_quarantine
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging

UTC = timezone.utc


def make_spec(tables: dict):
    return parse_spec({"source": {"sqlite": "x.sqlite"}, "targets": {"postgres": {"schema": "core"}}, "tables": tables})


def write_clean(staging: Staging, table: str, data: dict, schema: pa.Schema, partition: str | None = None) -> None:
    """Clean Parquet per the contract: target columns in source order, then _nova_rowid."""
    n = len(next(iter(data.values())))
    tbl = pa.table({**data, "_nova_rowid": list(range(1, n + 1))},
                   schema=schema.append(pa.field("_nova_rowid", pa.int64())))
    with staging.writer("clean", table, tbl.schema, partition) as w:
        w.write_table(tbl, row_group_size=2)  # several row groups: several batches


ALL_TYPES = {
    "id": ("integer", pa.int32()), "i2": ("smallint", pa.int16()), "i8": ("bigint", pa.int64()),
    "f8": ("double precision", pa.float64()), "f4": ("real", pa.float32()), "num": ("numeric", pa.string()),
    "money": ("numeric(10,2)", pa.string()), "txt": ("text", pa.string()), "vc": ("varchar(10)", pa.string()),
    "ch": ("char(3)", pa.string()), "u": ("uuid", pa.string()), "b": ("boolean", pa.bool_()),
    "tstz": ("timestamptz", pa.timestamp("us", "UTC")), "ts": ("timestamp", pa.timestamp("us")),
    "d": ("date", pa.date32()), "t": ("time", pa.time64("us")), "jb": ("jsonb", pa.string()),
    "js": ("json", pa.string()), "raw": ("bytea", pa.binary()),
}
NASTY = 'tab\there\nnewline\r\n back\\slash "double" \'single\' é 😀 \\N NULL'
ROWS = {
    "id": [1, 2, 3, 4],
    "i2": [-32768, 32767, None, 0],
    "i8": [-(2**63), 2**63 - 1, None, 0],
    "f8": [0.1, 1.0000000000000002, None, 5e-324],
    "f4": [0.1, 3.4028234663852886e38, None, 1e-45],
    "num": ["12345678901234567890.123456789012345", "-0.000000000000000001", None, "NaN"],
    "money": ["0.10", "-99999999.99", None, "0.00"],
    "txt": [NASTY, "", None, " "],
    "vc": ["", "0123456789", None, "é"],
    "ch": ["ab", "", None, "xyz"],
    "u": ["12345678-1234-5678-1234-567812345678", "00000000-0000-0000-0000-000000000000", None, "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "b": [True, False, None, True],
    "tstz": [datetime(2024, 1, 1, 12, 30, 45, 123456, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC), None,
             datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
    "ts": [datetime(2024, 2, 29, 0, 0, 0, 1), datetime(1970, 1, 1), None, datetime(1999, 12, 31, 23, 59, 59)],
    "d": [date(2024, 2, 29), date(1, 1, 1), None, date(9999, 12, 31)],
    "t": [dtime(0, 0), dtime(23, 59, 59, 999999), None, dtime(12, 0, 0, 1)],
    "jb": ['{"a": [1, 2.5, null, "x\\ty"], "é": true}', "[]", None, '"str"'],
    "js": ['{"keep": "as is",  "dup": 1, "dup": 2}', "null", None, "1e400"],
    "raw": [b"\x00\x01\xff\\\t\n", b"", None, bytes(range(256))],
}


def all_types_spec():
    return make_spec({"things": {"primary_key": ["id"], "columns": {c: {"type": t} for c, (t, _) in ALL_TYPES.items()}}})


def test_round_trip_of_every_type_is_exact(pg_url, tmp_path):
    spec, staging = all_types_spec(), Staging(str(tmp_path))
    write_clean(staging, "things", ROWS, pa.schema([(c, a) for c, (_, a) in ALL_TYPES.items()]))
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        conn.commit()
    result = load_table(pg_url, spec, "things", staging)
    assert result.rows == 4 and result.bytes > 0 and result.rows_per_s > 0
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # year 1 in a zone west of UTC is BC, which Python cannot hold
        got = conn.execute("SELECT * FROM core.things ORDER BY id").fetchall()
        texts = conn.execute("SELECT f8::text, f4::text, js::text FROM core.things ORDER BY id").fetchall()
    assert len(got) == 4
    cols = list(ALL_TYPES)
    for i, row in enumerate(got):
        values = dict(zip(cols, row))
        for c in ["id", "i2", "i8", "txt", "vc", "b", "ts", "d", "t", "raw"]:
            assert values[c] == ROWS[c][i], (c, i)
            assert values[c] is None or type(values[c]) is type(ROWS[c][i]), (c, i)
        assert values["tstz"] == ROWS["tstz"][i]
        assert values["num"] == (None if ROWS["num"][i] is None else Decimal(ROWS["num"][i])) or ROWS["num"][i] == "NaN"
        assert values["money"] == (None if ROWS["money"][i] is None else Decimal(ROWS["money"][i]))
        assert values["ch"] == (None if ROWS["ch"][i] is None else ROWS["ch"][i].ljust(3))
        assert values["u"] == (None if ROWS["u"][i] is None else UUID(ROWS["u"][i]))
        assert values["jb"] == (None if ROWS["jb"][i] is None else json.loads(ROWS["jb"][i]))
    assert got[3][cols.index("num")].is_nan()
    assert [t[0] for t in texts] == ["0.1", "1.0000000000000002", None, "5e-324"]
    assert [t[1] for t in texts] == ["0.1", "3.4028235e+38", None, "1e-45"]
    assert [t[2] for t in texts] == ROWS["js"]  # json keeps its text exactly


def test_special_floats(pg_url, tmp_path):
    spec, staging = make_spec({"f": {"columns": {"x": {"type": "double precision"}, "y": {"type": "real"}}}}), Staging(str(tmp_path))
    write_clean(staging, "f", {"x": [math.inf, -math.inf, math.nan, -0.0], "y": [math.inf, -math.inf, math.nan, -0.0]},
                pa.schema([("x", pa.float64()), ("y", pa.float32())]))
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        load_table(conn, spec, "f", staging)
        assert conn.execute("SELECT x::text, y::text FROM core.f").fetchall() == [
            ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("NaN", "NaN"), ("-0", "-0")]


PARENT_CHILD = {
    "parents": {"primary_key": ["id"], "columns": {"id": {"type": "integer"}, "name": {"type": "text"}},
                "indexes": [{"columns": ["name"]}]},
    "kids": {"primary_key": ["id"], "columns": {"id": {"type": "integer"}, "parent_id": {"type": "integer"}},
             "foreign_keys": [{"columns": ["parent_id"], "references": "parents", "referenced_columns": ["id"]}]},
}
PC_SCHEMA = {"parents": pa.schema([("id", pa.int32()), ("name", pa.string())]),
             "kids": pa.schema([("id", pa.int32()), ("parent_id", pa.int32())])}


def constraint_state(conn):
    return sorted(conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE connamespace = 'core'::regnamespace").fetchall())


def test_reload_replaces_rows_and_keeps_constraints(pg_url, tmp_path):
    spec, staging = make_spec(PARENT_CHILD), Staging(str(tmp_path))
    write_clean(staging, "parents", {"id": [1, 2, 3], "name": ["a", "b", "c"]}, PC_SCHEMA["parents"])
    write_clean(staging, "kids", {"id": [10, 11], "parent_id": [1, 3]}, PC_SCHEMA["kids"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tables(conn, spec)
        for t in ("parents", "kids"):
            load_table(pg_url, spec, t, staging)
        add_constraints(conn, spec)
        before = constraint_state(conn)
        assert before == [("kids_parent_id_fkey", True), ("kids_pkey", True), ("parents_pkey", True)]
        for _ in range(2):
            assert load_table(pg_url, spec, "parents", staging).rows == 3
        assert conn.execute("SELECT id, name FROM core.parents ORDER BY id").fetchall() == [(1, "a"), (2, "b"), (3, "c")]
        assert constraint_state(conn) == before
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'parents_name_idx'").fetchone() == (1,)
        # A new parent file without id 3: the kids' FK comes back NOT VALID with its orphan count; no row is dropped.
        staging.clear("clean", "parents")
        write_clean(staging, "parents", {"id": [1, 2], "name": ["a", "b"]}, PC_SCHEMA["parents"])
        result = load_table(pg_url, spec, "parents", staging)
        assert result.fk_orphans == {"core.kids.kids_parent_id_fkey": 1}
        assert dict(constraint_state(conn))["kids_parent_id_fkey"] is False
        assert conn.execute("SELECT count(*) FROM core.kids").fetchone() == (2,)


TELEMETRY = {"telemetry": {"table": "telemetry.drone_telemetry", "primary_key": ["id"],
                           "columns": {"id": {"type": "bigint"}, "recorded_at": {"type": "timestamptz"},
                                       "value": {"type": "double precision"}},
                           "partition": {"column": "recorded_at", "grain": "day", "physical": "month"}}}
T_SCHEMA = pa.schema([("id", pa.int64()), ("recorded_at", pa.timestamp("us", "UTC")), ("value", pa.float64())])


def day_rows(day: date, ids: list[int], value: float) -> dict:
    at = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"id": ids, "recorded_at": [at.replace(hour=h) for h in range(len(ids))], "value": [value] * len(ids)}


def test_partition_window_reload_replaces_only_that_window(pg_url, tmp_path):
    spec, staging = make_spec(TELEMETRY), Staging(str(tmp_path))
    write_clean(staging, "telemetry", day_rows(date(2024, 1, 31), [1, 2], 1.0), T_SCHEMA, "2024-01-31")
    write_clean(staging, "telemetry", day_rows(date(2024, 2, 1), [3, 4, 5], 1.0), T_SCHEMA, "2024-02-01")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tables(conn, spec)
        add_constraints(conn, spec)
        for key in ("2024-01-31", "2024-02-01"):
            load_table(conn, spec, "telemetry", staging, partition=key)
        staging.clear("clean", "telemetry", "2024-02-01")
        write_clean(staging, "telemetry", day_rows(date(2024, 2, 1), [3, 6], 2.0), T_SCHEMA, "2024-02-01")
        for _ in range(2):
            assert load_table(conn, spec, "telemetry", staging, partition="2024-02-01").rows == 2
        rows = conn.execute("SELECT id, value, tableoid::regclass::text FROM telemetry.drone_telemetry ORDER BY id").fetchall()
        assert rows == [(1, 1.0, "telemetry.drone_telemetry_p2024_01"), (2, 1.0, "telemetry.drone_telemetry_p2024_01"),
                        (3, 2.0, "telemetry.drone_telemetry_p2024_02"), (6, 2.0, "telemetry.drone_telemetry_p2024_02")]
        # A window file holding rows of another day is refused (they would survive the next window delete).
        with pytest.raises(LoadError, match=r"load of 'telemetry' failed: clean rows from .* fall outside the window"):
            load_table(conn, spec, "telemetry", staging, partition="2024-02-01",
                       window=(datetime(2024, 2, 2, tzinfo=UTC), datetime(2024, 2, 3, tzinfo=UTC)))
        # A full load of a partitioned table creates the partitions its data needs.
        assert load_table(conn, spec, "telemetry", staging).rows == 4
        assert conn.execute("SELECT count(*) FROM telemetry.drone_telemetry").fetchone() == (4,)


def test_range_load_rebuilds_keys_after_its_data_and_reports_orphans(pg_url, tmp_path):
    spec = make_spec({**PARENT_CHILD, "telemetry": {**TELEMETRY["telemetry"], "foreign_keys": [
        {"columns": ["id"], "references": "parents", "referenced_columns": ["id"]}]}})
    staging, keys = Staging(str(tmp_path)), ["2024-01-31", "2024-02-01"]
    write_clean(staging, "parents", {"id": [1, 2, 3, 4, 5], "name": list("abcde")}, PC_SCHEMA["parents"])
    write_clean(staging, "telemetry", day_rows(date(2024, 1, 31), [1, 2], 1.0), T_SCHEMA, keys[0])
    write_clean(staging, "telemetry", day_rows(date(2024, 2, 1), [3, 4, 5], 2.0), T_SCHEMA, keys[1])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tables(conn, spec)
        load_table(conn, spec, "parents", staging)
        add_constraints(conn, spec)
        state = "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'telemetry.drone_telemetry'::regclass"
        before = sorted(conn.execute(state).fetchall())
        assert [name for name, _ in before] == ["drone_telemetry_id_fkey", "drone_telemetry_pkey"]
        window = partition_window(spec, "telemetry", keys)
        assert window == (datetime(2024, 1, 31, tzinfo=UTC), datetime(2024, 2, 2, tzinfo=UTC))
        for _ in range(2):
            assert load_table(conn, spec, "telemetry", staging, partition=keys, window=window).rows == 5
        assert sorted(conn.execute(state).fetchall()) == before  # PK and FK dropped for the data, then back, validated
        assert conn.execute("SELECT count(*) FROM telemetry.drone_telemetry").fetchone() == (5,)
        staging.clear("clean", "telemetry", keys[1])
        write_clean(staging, "telemetry", day_rows(date(2024, 2, 1), [9], 7.0), T_SCHEMA, keys[1])
        # A partitioned table takes no NOT VALID FK: the orphans are counted and the FK stays absent.
        result = load_table(conn, spec, "telemetry", staging, partition=keys, window=window)
        assert result.fk_orphans == {"telemetry.drone_telemetry.drone_telemetry_id_fkey": 1}
        assert [name for name, _ in conn.execute(state)] == ["drone_telemetry_pkey"]
        assert conn.execute("SELECT count(*) FROM telemetry.drone_telemetry").fetchone() == (3,)


def test_clean_columns_must_match_the_target(pg_url, tmp_path):
    spec, staging = make_spec(PARENT_CHILD), Staging(str(tmp_path))
    write_clean(staging, "parents", {"id": [1], "nom": ["a"]}, pa.schema([("id", pa.int32()), ("nom", pa.string())]))
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        with pytest.raises(LoadError, match=r"^load of 'parents' failed: clean Parquet columns \['id', 'nom', '_nova_rowid'\]"):
            load_table(conn, spec, "parents", staging)


def _killer(admin_url: str, db: str, kills: int, stop: threading.Event, killed: list) -> None:
    """Terminate backends of `db` that wait on a lock, `kills` times."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while len(killed) < kills and not stop.is_set():
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (db,))]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                killed.append(pid)
            time.sleep(0.01)


def test_connection_drop_mid_load(pg_url, pg_server, tmp_path):
    spec, staging = make_spec(PARENT_CHILD), Staging(str(tmp_path))
    write_clean(staging, "parents", {"id": [1, 2], "name": ["old", "old"]}, PC_SCHEMA["parents"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tables(conn, spec)
        load_table(conn, spec, "parents", staging)
        add_constraints(conn, spec)
        constraints = constraint_state(conn)
    staging.clear("clean", "parents")
    write_clean(staging, "parents", {"id": [7, 8, 9], "name": ["new"] * 3}, PC_SCHEMA["parents"])
    db = psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"]

    def attempt(kills: int):
        blocker = psycopg.connect(pg_url)
        blocker.execute("LOCK TABLE core.parents IN ACCESS SHARE MODE")  # every load attempt blocks mid-transaction
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_killer, args=(pg_server, db, kills, stop, killed))
        killer.start()

        def release():
            killer.join()
            blocker.rollback()

        releaser = threading.Thread(target=release)
        releaser.start()
        try:
            return load_table(pg_url, spec, "parents", staging, tries=3, backoff_s=0.01)
        finally:
            stop.set()
            releaser.join()
            blocker.close()
            assert len(killed) == kills

    with pytest.raises(LoadError, match=r"^load of 'parents' failed after 3 attempt\(s\), connection lost: terminating connection"):
        attempt(kills=3)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id, name FROM core.parents ORDER BY id").fetchall() == [(1, "old"), (2, "old")]
        assert constraint_state(conn) == constraints
    assert attempt(kills=1).rows == 3
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id FROM core.parents ORDER BY id").fetchall() == [(7,), (8,), (9,)]
        assert constraint_state(conn) == constraints


Q_SCHEMA = pa.schema([("table", pa.string()), ("source_key", pa.string()), ("column", pa.string()),
                      ("raw_value", pa.string()), ("reason", pa.string()), ("row", pa.string())])


def test_store_quarantine_replaces_the_tables_rows_of_any_run(pg_url, tmp_path):
    staging = Staging(str(tmp_path))
    rows = {"table": ["users", "users"], "source_key": ['{"id": 1}', '{"rowid": 7}'], "column": ["born", "avatar"],
            "raw_value": ["31/02/2020", "x'ff00'"], "reason": ["not a timestamp", "invalid UTF-8"],
            "row": ['{"id": 1, "born": "31/02/2020"}', '{"id": 7, "bad": "\\u0000"}']}
    with staging.writer("quarantine", "users", Q_SCHEMA) as w:
        w.write_table(pa.table(rows, schema=Q_SCHEMA))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert store_quarantine(conn, staging, "users", "run-1") == 2
        assert store_quarantine(conn, staging, "users", "run-1") == 2
        assert store_quarantine(conn, staging, "users", "run-2") == 2
        assert store_quarantine(conn, staging, "empty", "run-1") == 0
        got = conn.execute("SELECT run_id, table_name, source_key, column_name, raw_value, reason, row"
                           " FROM nova_meta.nova_quarantine ORDER BY run_id, source_key").fetchall()
        assert got == [("run-2", "users", '{"id": 1}', "born", "31/02/2020", "not a timestamp", rows["row"][0]),
                       ("run-2", "users", '{"rowid": 7}', "avatar", "x'ff00'", "invalid UTF-8", rows["row"][1])]
        assert conn.execute("SELECT count(*) FROM nova_meta.nova_quarantine WHERE quarantined_at IS NULL").fetchone() == (0,)


def test_uuid_texts_are_encoded_as_their_16_bytes_whatever_the_spelling():
    import pyarrow.compute as pc

    from nova_pipeline.load import postgres_load

    def encoded(values):
        arr = pa.array(values, pa.string())
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        return pc.binary_join_element_wise(*postgres_load._uuid_field(arr, valid), b"").to_pylist()

    u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    expected = [len(UUID(u).bytes).to_bytes(4, "big") + UUID(u).bytes, b"\xff\xff\xff\xff"]
    assert encoded([u, None]) == expected  # the vectorised path
    assert encoded([u.upper().replace("-", ""), None]) == expected
    assert encoded(["{" + u + "}", None]) == expected  # braces: value by value
    assert encoded([]) == []
