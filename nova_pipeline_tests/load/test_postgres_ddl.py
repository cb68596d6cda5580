"""postgres_ddl against a real PostgreSQL: odd identifiers, idempotence, partitions, constraints after the data."""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
import pytest

from nova_pipeline.load.postgres_ddl import DDLError, add_constraints, create_tables, ensure_partitions, fk_order, plan_ddl
from nova_pipeline.core.spec import parse_spec

LONG = "ä" * 40  # 80 UTF-8 bytes: renamed to fit 63


def make_spec(tables: dict, schema: str = "core"):
    return parse_spec({"source": {"sqlite": "x.sqlite"}, "targets": {"postgres": {"schema": schema}}, "tables": tables})


def columns(conn, schema, table):
    return conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (psycopg.sql.Identifier(schema, table).as_string(conn),)).fetchall()


ODD = {
    "order": {"columns": {"user": {"type": "bigint", "nullable": False}, "Mixed Case": {"type": "text"},
                          'say "hi"': {"type": "varchar(20)", "default": "'x'"}, "prix €": {"type": "numeric(10,2)"},
                          LONG: {"type": "timestamptz"}, "meta": {"type": "text"}},
              "json_columns": ["meta"], "primary_key": ["user"]},
    "select table": {"table": "Other Schema.Weird Table", "columns": {"id": {"type": "integer"}}},
}


def test_odd_identifiers_are_quoted_and_renamed(pg_url):
    spec = make_spec(ODD)
    with psycopg.connect(pg_url) as conn:
        actions = create_tables(conn, spec)
        assert actions == ["created core.order", "created Other Schema.Weird Table"]
        cols = columns(conn, "core", "order")
        assert [c[0] for c in cols] == ["user", "Mixed Case", 'say "hi"', "prix €", "ä" * 27 + "_" + cols[4][0][-8:], "meta"]
        assert len(cols[4][0].encode()) <= 63
        assert [c[1] for c in cols] == ["bigint", "text", "character varying(20)", "numeric(10,2)",
                                        "timestamp with time zone", "jsonb"]
        assert [c[2] for c in cols] == [True, False, False, False, False, False]
        conn.execute('INSERT INTO core."order" ("user") VALUES (1)')
        assert conn.execute('SELECT "say ""hi""" FROM core."order"').fetchone() == ("x",)
        assert columns(conn, "Other Schema", "Weird Table") == [("id", "integer", False)]


def test_create_tables_is_idempotent_and_recreates_changed_tables(pg_url):
    spec = make_spec(ODD)
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        conn.execute('INSERT INTO core."order" ("user") VALUES (7)')
        assert create_tables(conn, spec) == ["kept core.order (same columns and types)",
                                             "kept Other Schema.Weird Table (same columns and types)"]
        assert conn.execute('SELECT count(*) FROM core."order"').fetchone() == (1,)
        changed = make_spec({**ODD, "select table": {"table": "Other Schema.Weird Table",
                                                     "columns": {"id": {"type": "bigint"}}}})
        actions = create_tables(conn, changed)
        assert actions[0] == "kept core.order (same columns and types)"
        assert actions[1].startswith("re-created Other Schema.Weird Table (")
        assert columns(conn, "Other Schema", "Weird Table") == [("id", "bigint", False)]


def test_too_many_columns_raises_after_creating_the_others(pg_url):
    wide = {f"c{i}": {"type": "integer"} for i in range(1700)}
    spec = make_spec({"a": {"columns": {"id": {"type": "integer"}}}, "wide": {"columns": wide},
                      "b": {"columns": {"id": {"type": "integer"}}}})
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(DDLError, match=r"^table 'wide': 1700 columns, PostgreSQL allows at most 1600$") as err:
            create_tables(conn, spec)
        assert err.value.actions == ["created core.a", "created core.b"]
        assert conn.execute("SELECT to_regclass('core.a'), to_regclass('core.b'), to_regclass('core.wide')").fetchone() \
            == ("core.a", "core.b", None)


TELEMETRY = {"telemetry": {"table": "telemetry.drone_telemetry", "primary_key": ["id"],
                           "columns": {"id": {"type": "bigint"}, "recorded_at": {"type": "timestamptz"},
                                       "value": {"type": "double precision"}},
                           "indexes": [{"columns": ["value"]}],
                           "partition": {"column": "recorded_at", "grain": "day", "physical": "month"}}}


def test_partitioned_parent_and_partitions_across_a_month_boundary(pg_url):
    spec = make_spec(TELEMETRY)
    with psycopg.connect(pg_url) as conn:
        assert create_tables(conn, spec) == ["created telemetry.drone_telemetry"]
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'telemetry.drone_telemetry'::regclass").fetchone() == ("p",)
        assert add_constraints(conn, spec).failed == {}
        start, end = datetime(2024, 1, 30, tzinfo=timezone.utc), datetime(2024, 2, 2, tzinfo=timezone.utc)
        created = ensure_partitions(conn, spec, "telemetry", start, end)
        assert [c.split()[2] for c in created] == ["telemetry.drone_telemetry_p2024_01", "telemetry.drone_telemetry_p2024_02"]
        assert ensure_partitions(conn, spec, "telemetry", start, end) == []
        conn.execute("INSERT INTO telemetry.drone_telemetry VALUES (1, '2024-01-31 23:59:59.999999+00', 1), (2, '2024-02-01 00:00+00', 2)")
        parts = conn.execute("SELECT tableoid::regclass::text, id FROM telemetry.drone_telemetry ORDER BY id").fetchall()
        assert parts == [("telemetry.drone_telemetry_p2024_01", 1), ("telemetry.drone_telemetry_p2024_02", 2)]
        indexes = {r[0] for r in conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'telemetry.drone_telemetry_p2024_02'::regclass")}
        assert len(indexes) == 2  # the PK and the value index reached the new partition


def test_partitioned_primary_key_is_extended_and_reported(pg_url):
    spec = make_spec(TELEMETRY)
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        report = add_constraints(conn, spec)
        assert report.failed == {}
        assert report.notes == ["telemetry.drone_telemetry: primary key extended with partition column 'recorded_at' (PostgreSQL requires it)"]
        pk = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'drone_telemetry_pkey'").fetchone()
        assert pk == ("PRIMARY KEY (id, recorded_at)",)


def test_daily_partitions():
    spec = make_spec({"t": {**TELEMETRY["telemetry"], "table": None,
                            "partition": {"column": "recorded_at", "physical": "day"}}})
    from nova_pipeline.load.postgres_ddl import _partition_bounds
    bounds = _partition_bounds(spec.tables["t"], datetime(2024, 2, 28, 12), datetime(2024, 3, 1, 0, 0, 1))
    assert [b[0] for b in bounds] == ["p2024_02_28", "p2024_02_29", "p2024_03_01"]


GRAPH = {
    "employees": {"primary_key": ["id"], "columns": {"id": {"type": "integer"}, "manager_id": {"type": "integer"},
                                                      "dept_id": {"type": "integer"}, "email": {"type": "text"}},
                  "foreign_keys": [{"columns": ["manager_id"], "references": "employees", "referenced_columns": ["id"]},
                                   {"columns": ["dept_id"], "references": "departments", "referenced_columns": ["id"]}],
                  "indexes": [{"columns": ["email"], "unique": True, "where": "email IS NOT NULL"}]},
    "departments": {"primary_key": ["id"], "columns": {"id": {"type": "integer"}, "head_id": {"type": "integer"}},
                    "foreign_keys": [{"columns": ["head_id"], "references": "employees", "referenced_columns": ["id"]}]},
    "badges": {"columns": {"emp": {"type": "integer"}},
               "foreign_keys": [{"columns": ["emp"], "references": "employees", "referenced_columns": ["id"]}]},
}


def test_add_constraints_cycle_self_reference_orphans_and_idempotence(pg_url):
    spec = make_spec(GRAPH)
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        conn.execute("INSERT INTO core.departments VALUES (10, 1)")
        conn.execute("INSERT INTO core.employees VALUES (1, NULL, 10, 'a@x'), (2, 1, 10, NULL), (3, 1, 10, NULL)")
        conn.execute("INSERT INTO core.badges VALUES (1), (99), (98), (NULL)")
        report = add_constraints(conn, spec)
        assert report.failed == {}
        assert sorted(report.added) == sorted([
            "core.employees.employees_pkey", "core.departments.departments_pkey", "core.employees.employees_email_key",
            "core.employees.employees_manager_id_fkey", "core.employees.employees_dept_id_fkey",
            "core.departments.departments_head_id_fkey", "core.badges.badges_emp_fkey"])
        assert report.not_valid == {"core.badges.badges_emp_fkey": 2}
        assert conn.execute("SELECT count(*) FROM core.badges").fetchone() == (4,)  # orphans are kept
        validated = dict(conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f'").fetchall())
        assert validated == {"employees_manager_id_fkey": True, "employees_dept_id_fkey": True,
                             "departments_head_id_fkey": True, "badges_emp_fkey": False}
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():
                conn.execute("INSERT INTO core.employees VALUES (4, 1, 10, 'a@x')")
        again = add_constraints(conn, spec)
        assert again.added == [] and again.failed == {} and sorted(again.existing) == sorted(report.added)


def test_add_constraints_reports_failures_and_goes_on(pg_url):
    spec = make_spec({"a": {"primary_key": ["id"], "columns": {"id": {"type": "integer"}}},
                      "b": {"primary_key": ["id"], "columns": {"id": {"type": "integer"}}}})
    with psycopg.connect(pg_url) as conn:
        create_tables(conn, spec)
        conn.execute("INSERT INTO core.a VALUES (1), (1)")
        report = add_constraints(conn, spec)
        assert report.added == ["core.b.b_pkey"]
        assert list(report.failed) == ["core.a.a_pkey"] and "could not create unique index" in report.failed["core.a.a_pkey"]


def test_fk_order_parents_first_cycles_in_spec_order():
    spec = make_spec({**GRAPH, "logs": {"target": "skip"}, "root": {"columns": {"id": {"type": "integer"}}},
                      "leaf": {"columns": {"r": {"type": "integer"}, "b": {"type": "integer"}},
                               "foreign_keys": [{"columns": ["b"], "references": "badges", "referenced_columns": ["emp"]},
                                                {"columns": ["r"], "references": "root", "referenced_columns": ["id"]}]}})
    assert fk_order(spec) == ["root", "employees", "departments", "badges", "leaf"]
    acyclic = make_spec({"c": {"columns": {"x": {"type": "integer"}},
                               "foreign_keys": [{"columns": ["x"], "references": "p", "referenced_columns": ["x"]}]},
                         "p": {"columns": {"x": {"type": "integer"}}}})
    assert fk_order(acyclic) == ["p", "c"]


def test_plan_ddl_renders_without_a_connection():
    plan = plan_ddl(make_spec({**ODD, **GRAPH}))
    assert plan[0] == 'CREATE SCHEMA IF NOT EXISTS "core";'
    assert 'CREATE TABLE "core"."order" ("user" bigint NOT NULL, "Mixed Case" text, "say ""hi""" varchar(20) DEFAULT \'x\',' in plan[2]
    assert 'CREATE UNIQUE INDEX "employees_email_key" ON "core"."employees" ("email") WHERE email IS NOT NULL;' in plan
    assert plan[-1] == ('ALTER TABLE "core"."badges" ADD CONSTRAINT "badges_emp_fkey" FOREIGN KEY ("emp")'
                        ' REFERENCES "core"."employees" ("id") ON DELETE NO ACTION;')
