"""Issue 19 item 7: a quarantined row names every failing column, so one fix-and-rerun is enough; counts stay one
per quarantined source row."""

import json
import sqlite3

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.extract.export import export_table
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.transform.transform import transform_table

COLUMNS = {"id": {"type": "bigint"}, "created": {"type": "timestamptz", "declared": "DATETIME"},
           "qty": {"type": "integer"}, "meta": {"type": "jsonb"}}
ROWS = [
    (1, "2024-01-02T03:04:05Z", 1, '{"a": 1}'),
    (2, "2025-02-30", "many", "{oops"),  # three bad values
    (3, "2024-01-02", 2, "{oops"),  # one bad value
    (4, "2024-13-01", 3, "{}"),
]


def _source(tmp_path):
    db = tmp_path / "s.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, created DATETIME, qty INTEGER, meta TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", ROWS)
    return db


def _quarantine(st: Staging) -> list[dict]:
    return pa.concat_tables(pq.read_table(f) for f in st.files("quarantine", "orders")).sort_by("source_key").to_pylist()


def test_every_failing_column_of_a_row_is_recorded_once(tmp_path):
    db = _source(tmp_path)
    spec = parse_spec({"source": {"sqlite": str(db)}, "tables": {"orders": {"primary_key": ["id"], "columns": COLUMNS}}})
    st = Staging(str(tmp_path / "stg"))
    export_table(str(db), "orders", list(COLUMNS), st, batch_rows=3)
    res = transform_table(spec, "orders", st)
    assert (res.rows_in, res.rows_out, res.quarantined) == (4, 1, 3)
    rows = {r["source_key"]: r for r in _quarantine(st)}
    assert list(rows) == ['{"id":2}', '{"id":3}', '{"id":4}']
    both = rows['{"id":2}']
    assert both["column"] == "created, qty, meta"
    assert both["reason"] == "invalid date; not an integer; invalid JSON"
    assert json.loads(both["raw_value"]) == {"created": "2025-02-30", "qty": "many", "meta": "{oops"}
    assert json.loads(both["row"]) == {"id": 2, "created": "2025-02-30", "qty": "many", "meta": "{oops", "_nova_rowid": 2}
    one = rows['{"id":3}']
    assert (one["column"], one["raw_value"], one["reason"]) == ("meta", "{oops", "invalid JSON")
    assert res.reasons == {"created: invalid date": 2, "meta: invalid JSON": 2, "qty: not an integer": 1}


def test_fail_mode_names_every_failing_column(tmp_path):
    import pytest

    from nova_pipeline.transform.transform import TransformError

    db = _source(tmp_path)
    spec = parse_spec({"source": {"sqlite": str(db)}, "on_bad_row": "fail",
                       "tables": {"orders": {"primary_key": ["id"], "columns": COLUMNS}}})
    st = Staging(str(tmp_path / "stg"))
    export_table(str(db), "orders", list(COLUMNS), st)
    with pytest.raises(TransformError, match=r'column created, qty, meta: key \{"id":2\}: invalid date; not an integer'):
        transform_table(spec, "orders", st)


def test_migrate_stores_one_quarantine_row_per_source_row_with_all_columns(tmp_path, pg_url):
    db = _source(tmp_path)
    spec_file = tmp_path / "app.yaml"
    spec_file.write_text(json.dumps({"source": {"sqlite": str(db)}, "staging": str(tmp_path / "stg"),
                                     "reports": str(tmp_path / "reports"),
                                     "tables": {"orders": {"primary_key": ["id"], "columns": COLUMNS}}}))
    res = CliRunner().invoke(main, ["migrate", "--spec", str(spec_file), "--postgres-url", pg_url, "--no-backup",
                                    "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "reports" / "migration_report.json").read_text())
    table = report["tables"]["orders"]
    assert (table["source_rows"], table["loaded_rows"], table["quarantined_rows"]) == (4, 1, 3)
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT source_key, column_name, reason FROM nova_meta.nova_quarantine "
                              "WHERE table_name = 'orders' ORDER BY source_key").fetchall()
    assert stored == [('{"id":2}', "created, qty, meta", "invalid date; not an integer; invalid JSON"),
                      ('{"id":3}', "meta", "invalid JSON"), ('{"id":4}', "created", "invalid date")]
