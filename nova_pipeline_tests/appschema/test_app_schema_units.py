"""Per translation class (keys, CHECK, collation, generated, index): what is carried over, how, and what is
reported instead — translation units, init's proposals, and DDL/load on the embedded PostgreSQL (no ICU, no
citext: the partial COLLATE NOCASE fallback)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import psycopg
import pyarrow as pa
import pytest

from nova_pipeline.extract import introspect
from nova_pipeline.report import planning
from nova_pipeline.load import postgres_ddl
from nova_pipeline.appschema.proposal import propose_spec
from nova_pipeline.extract.introspect import next_rowid
from nova_pipeline.load.postgres_load import load_table
from nova_pipeline.core.spec import SpecError, parse_spec
from nova_pipeline.core.sql_translate import Untranslatable, index_terms, table_definition, translate_expression
from nova_pipeline.core.staging import Staging
from nova_pipeline.validate.postgres_checks import TargetTable, check_check_constraints
from nova_pipeline_tests.load.test_postgres_load import write_clean


def make_spec(tables: dict, source: str = "x.sqlite"):
    return parse_spec({"source": {"sqlite": source}, "tables": tables})


# --- translation units ---------------------------------------------------------------------------------------

def test_expressions_resolve_names_case_insensitively_and_quote_them():
    assert translate_expression("AGE >= 0 AND Name <> ''", {"age": "age", "name": "Full Name"}) == \
        '"age" >= 0 AND "Full Name" <> \'\''
    assert translate_expression("ifnull(a, 0) + 1") == 'COALESCE("a", 0) + 1'
    assert translate_expression("active = 1 AND flag IN (0, 1)", types={"active": "boolean", "Flag": "boolean"}) == \
        '"active" = TRUE AND "flag" IN (FALSE, TRUE)'


@pytest.mark.parametrize("sqlite, pg_type", [("created > 0", "timestamptz"), ("flag > 0", "boolean"),
                                             ("code IN (1, 2)", "text"), ("day BETWEEN 0 AND 9", "date")])
def test_numbers_compared_with_a_column_that_is_no_longer_numeric_are_refused(sqlite, pg_type):
    column = sqlite.split()[0]
    with pytest.raises(Untranslatable, match=f"compares {column} \\(migrated to {pg_type}\\) with a number"):
        translate_expression(sqlite, types={column: pg_type})
    assert translate_expression("n BETWEEN 0 AND 9", types={"n": "numeric(10,2)"}) == '"n" BETWEEN 0 AND 9'


@pytest.mark.parametrize("sqlite, reason", [
    ("typeof(x) = 'integer'", "typeof()"),
    ("x GLOB 'a*'", "GLOB"),
    ("printf('%d', x) <> ''", "function printf()"),
    ("x COLLATE NOCASE = 'a'", "COLLATE NOCASE"),
    ("hex(x) = '00'", "hex()"),
    ("x >", "cannot parse"),
])
def test_sqlite_only_expressions_are_refused_with_the_reason(sqlite, reason):
    with pytest.raises(Untranslatable, match=reason):
        translate_expression(sqlite)


def test_table_definition_reads_checks_collations_and_generation_expressions():
    d = table_definition("""CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT COLLATE NOCASE
        CHECK (length(a) > 0), b TEXT DEFAULT ('x') COLLATE RTRIM, n INT, w INT AS (n * 2) STORED,
        CONSTRAINT positive CHECK (n > 0), CHECK (n < 100))""")
    assert d.checks == [(None, "LENGTH(a) > 0"), ("positive", "n > 0"), (None, "n < 100")]
    assert d.collations == {"a": "NOCASE", "b": "RTRIM"}
    assert d.generated == {"w": "n * 2"}
    assert d.autoincrement
    assert not table_definition("CREATE TABLE u (id INTEGER PRIMARY KEY)").autoincrement


def test_index_terms_keep_order_direction_and_predicate():
    terms, where = index_terms("CREATE UNIQUE INDEX i ON t (lower(title), status COLLATE NOCASE DESC, x COLLATE BINARY)"
                               " WHERE status = 'published'")
    assert terms == [("LOWER(title)", False), ("LOWER(status)", True), ("x", False)]
    assert where == "status = 'published'"


# --- init's proposals ----------------------------------------------------------------------------------------

@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE alias (id INTEGER PRIMARY KEY, v TEXT COLLATE RTRIM, n INTEGER COLLATE NOCASE);
        CREATE TABLE auto (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
        CREATE TABLE descending (id INTEGER PRIMARY KEY DESC, v TEXT);
        CREATE TABLE keyed (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID;
        CREATE TABLE pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b));
        CREATE TABLE notint (id INT PRIMARY KEY, v TEXT);
        CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, code TEXT AS (printf('%05d', id)),
                           CHECK (typeof(title) = 'text'));
        CREATE INDEX docs_glob ON docs (title) WHERE title GLOB 'A*';
        CREATE INDEX docs_expr ON docs (lower(title) DESC) WHERE title IS NOT NULL;
        INSERT INTO alias (id, v) VALUES (1, 'a'), (7, 'b');
        INSERT INTO auto (v) VALUES ('a'), ('b'), ('c');
        DELETE FROM auto WHERE id = 3;
        DELETE FROM alias WHERE id = 7;
        INSERT INTO docs (title) VALUES ('A'), ('b');
    """)
    conn.commit()
    conn.close()
    return path


def test_next_rowid_is_what_sqlite_hands_out_next(source):
    conn = sqlite3.connect(source)
    assert next_rowid(conn, "alias", "id") == 2  # the deleted 7 is reused: max + 1
    assert next_rowid(conn, "auto", "id") == 4  # AUTOINCREMENT: past sqlite_sequence, 3 is never reused
    assert next_rowid(conn, "descending", "id") == 1  # empty
    conn.execute("INSERT INTO alias (v) VALUES ('x')")
    conn.execute("INSERT INTO auto (v) VALUES ('x')")
    assert conn.execute("SELECT max(id) FROM alias").fetchone() == (2,)
    assert conn.execute("SELECT max(id) FROM auto").fetchone() == (4,)
    conn.close()


def test_identity_only_for_the_rowid_alias(source):
    spec, report = propose_spec(source)
    identity = {n: [c for c, col in t["columns"].items() if col.get("identity")] for n, t in spec["tables"].items()}
    assert identity == {"alias": ["id"], "auto": ["id"], "descending": [], "keyed": [], "pair": [], "notint": [],
                        "docs": ["id"]}
    tables = {t.table: t for t in report.tables}
    assert tables["auto"].identity.endswith("max(id) + 1, past sqlite_sequence (AUTOINCREMENT): 4 now")
    assert tables["alias"].identity.endswith("at max(id) + 1: 2 now")


def test_what_is_not_translated_is_reported_with_its_sql(source):
    spec, report = propose_spec(source)
    warnings = "\n".join(report.warnings)
    docs = spec["tables"]["docs"]
    assert docs["checks"] == [{"sqlite": "TYPEOF(title) = 'text'",
                               "reason": "typeof() (SQLite storage classes) has no PostgreSQL equivalent"}]
    assert "generated" not in docs["columns"]["code"]  # the computed values are migrated as a plain column
    assert "docs.code: generated column PRINTF('%05d', id) not translated" in warnings
    assert [i["name"] for i in docs["indexes"]] == ["docs_expr"]
    assert docs["indexes"][0]["expressions"] == ['LOWER("title") DESC']
    assert docs["indexes"][0]["where"] == 'NOT "title" IS NULL'
    assert "docs: index docs_glob not translated (GLOB has no PostgreSQL translation)" in warnings
    assert "alias.v: COLLATE RTRIM has no PostgreSQL equivalent; compared exactly" in warnings
    assert "collate" not in spec["tables"]["alias"]["columns"]["n"]  # NOCASE on an integer column means nothing
    md = report.to_markdown()
    assert "index docs_glob `CREATE INDEX docs_glob ON docs (title) WHERE title GLOB 'A*'`: GLOB" in md
    assert "CHECK `TYPEOF(title) = 'text'`: typeof()" in md
    parse_spec(spec)


def test_spec_rules_for_the_new_options():
    with pytest.raises(SpecError, match="identity needs an integer type"):
        make_spec({"t": {"columns": {"id": {"type": "text", "identity": True}}}})
    with pytest.raises(SpecError, match="either `columns` or `expressions`"):
        make_spec({"t": {"columns": {"a": {"type": "text"}}, "indexes": [{"columns": []}]}})
    with pytest.raises(SpecError, match="expression indexes are for PostgreSQL"):
        parse_spec({"source": {"sqlite": "x"}, "targets": {"mongo": {"uri": "mongomock://x"}}, "tables": {
            "t": {"target": "mongo", "columns": {"a": {"type": "text"}}, "indexes": [{"expressions": ["lower(a)"]}]}}})


# --- DDL, load and checks on the embedded server (no ICU, no citext) -------------------------------------------

def test_nocase_without_icu_or_citext_is_a_reported_lower_unique_index(pg_url):
    spec = make_spec({"people": {"primary_key": ["id"], "indexes": [{"columns": ["name"], "unique": True}],
                                 "columns": {"id": {"type": "bigint", "identity": True},
                                             "name": {"type": "text", "collate": "nocase"}}}})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        actions = postgres_ddl.create_tables(conn, spec)
        assert actions[0].startswith("COLLATE NOCASE in public: PARTIAL")
        conn.execute("INSERT INTO people (name) VALUES ('Ada')")
        report = postgres_ddl.add_constraints(conn, spec)
        assert any("COLLATE NOCASE partial" in n for n in report.notes)
        assert "lower(name)" in conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'people_name_key'").fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO people (name) VALUES ('ADA')")


@pytest.fixture
def staged(tmp_path):
    staging = Staging(str(tmp_path / "staging"))
    write_clean(staging, "people", {"id": [1, 2, 3], "age": [30, -1, 40], "pages": [1, 2, 3], "words": [300, 600, 900]},
                pa.schema([("id", pa.int64()), ("age", pa.int64()), ("pages", pa.int64()), ("words", pa.int64())]))
    return staging


def people_spec(generated: str = '"pages" * 300', source: str = "x.sqlite"):
    return make_spec({"people": {"primary_key": ["id"], "checks": [{"sql": '"age" >= 0', "sqlite": "age >= 0"},
                                                                   {"sqlite": "typeof(age) = 'integer'", "reason": "typeof()"}],
                                 "columns": {"id": {"type": "bigint", "identity": True}, "age": {"type": "bigint"},
                                             "pages": {"type": "bigint"},
                                             "words": {"type": "bigint", "generated": generated}}}}, source)


def test_check_broken_by_the_source_is_added_not_valid_named_by_key_and_survives_a_reload(pg_url, staged):
    spec = people_spec()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        postgres_ddl.create_tables(conn, spec)
        load_table(conn, spec, "people", staged)
        report = postgres_ddl.add_constraints(conn, spec)
        assert report.not_valid == {"public.people.people_check1": 1}
        assert report.untranslated == ["public.people: CHECK (typeof(age) = 'integer'): typeof()"]
        assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'people_check1'").fetchone() == (False,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO people (age, pages) VALUES (-5, 1)")
        result = check_check_constraints(TargetTable(conn, spec, "people", {"column_order": [], "columns": {}, "primary_key": ["id"]}))
        assert not result.passed and result.severity == "WARN"
        assert result.failing_keys == [{"id": 2}]
        assert "1 row(s) break people_check1: id=2" in result.detail and "1 not translated" in result.detail
        load_table(conn, spec, "people", staged)  # the NOT VALID CHECK must not refuse the source's own rows
        assert conn.execute("SELECT count(*) FROM people").fetchone() == (3,)
        assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'people_check1'").fetchone() == (False,)


def test_generated_column_is_computed_by_postgresql_and_not_copied(pg_url, staged):
    spec = people_spec()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        postgres_ddl.create_tables(conn, spec)
        load_table(conn, spec, "people", staged)
        assert conn.execute("SELECT attgenerated FROM pg_attribute WHERE attrelid = 'people'::regclass"
                            " AND attname = 'words'").fetchone() == ("s",)
        assert conn.execute("SELECT words FROM people ORDER BY id").fetchall() == [(300,), (600,), (900,)]
        assert conn.execute("INSERT INTO people (id, age, pages) VALUES (9, 1, 5) RETURNING words").fetchone() == (1500,)


def test_generated_expression_postgresql_refuses_becomes_a_plain_column_holding_the_values(pg_url, staged):
    spec = people_spec(generated="\"pages\" + extract(epoch FROM now())::bigint")  # not immutable
    with psycopg.connect(pg_url, autocommit=True) as conn:
        actions = postgres_ddl.create_tables(conn, spec)
        assert "generated columns as plain columns holding the computed values" in actions[0]
        assert "generation expression is not immutable" in actions[0]
        load_table(conn, spec, "people", staged)
        assert conn.execute("SELECT words FROM people ORDER BY id").fetchall() == [(300,), (600,), (900,)]
        assert postgres_ddl.create_tables(conn, spec) == ["kept public.people (same columns and types)"]


def test_identity_restarts_where_sqlite_goes_on(pg_url, staged, tmp_path):
    src = tmp_path / "src.sqlite"
    with sqlite3.connect(src) as lite:
        lite.execute("CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, age INT, pages INT, words INT)")
        lite.executemany("INSERT INTO people (age) VALUES (?)", [(1,)] * 5)
        lite.execute("DELETE FROM people WHERE id > 3")
    spec = people_spec(source=str(src))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        postgres_ddl.create_tables(conn, spec)
        load_table(conn, spec, "people", staged)
        report = postgres_ddl.add_constraints(conn, spec, source=src)
        assert report.identity_restarts == {"public.people.id": 6}
        assert conn.execute("INSERT INTO people (age, pages) VALUES (1, 1) RETURNING id").fetchone() == (6,)
        assert "identity columns not restarted" in " ".join(postgres_ddl.add_constraints(conn, spec).notes)


def test_identity_beyond_the_column_type_is_left_as_it_is(pg_url, tmp_path):
    src = tmp_path / "src.sqlite"
    with sqlite3.connect(src) as lite:
        lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        lite.execute("INSERT INTO t VALUES (32767)")
    spec = make_spec({"t": {"primary_key": ["id"], "columns": {"id": {"type": "smallint", "identity": True}}}}, str(src))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert postgres_ddl.restart_identities(conn, spec, src) == {}  # no table (its creation failed): passed over
        postgres_ddl.create_tables(conn, spec)
        assert postgres_ddl.restart_identities(conn, spec, src) == {}
        assert conn.execute("INSERT INTO t DEFAULT VALUES RETURNING id").fetchone() == (1,)


def test_plan_shows_restarts_translated_sql_and_what_is_not_translated(source):
    spec_dict, _ = propose_spec(source)
    spec = parse_spec(spec_dict)
    text = planning.to_text(planning.plan(spec))
    assert "identity id: restarted at 4 after the load" in text
    assert "CHECK not translated: TYPEOF(title) = 'text'" in text
    assert 'CREATE INDEX "docs_expr" ON "public"."docs" (LOWER("title") DESC) WHERE NOT "title" IS NULL;' in text
    assert '"id" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL' in text
    assert "not carried over: generated column code (virtual in SQLite): its computed values, as a plain column" in text
    assert "not carried over: index docs_glob: CREATE INDEX docs_glob ON docs (title) WHERE title GLOB 'A*'" in text
    assert ";;" not in text


def test_partitioned_tables_keep_identity_through_the_parent(pg_url, tmp_path):
    src = tmp_path / "src.sqlite"
    with sqlite3.connect(src) as lite:
        lite.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT)")
        lite.execute("INSERT INTO events VALUES (10, '2024-01-02')")
    spec = make_spec({"events": {"primary_key": ["id"], "partition": {"column": "at", "physical": "month"},
                                 "columns": {"id": {"type": "bigint", "identity": True},
                                             "at": {"type": "timestamptz", "nullable": False}}}}, str(src))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        postgres_ddl.create_tables(conn, spec)
        postgres_ddl.ensure_partitions(conn, spec, "events", datetime(2024, 1, 1, tzinfo=timezone.utc),
                                       datetime(2024, 2, 1, tzinfo=timezone.utc))
        assert postgres_ddl.restart_identities(conn, spec, src) == {"public.events.id": 11}
        assert conn.execute("INSERT INTO events (at) VALUES ('2024-01-05') RETURNING id").fetchone() == (11,)


def test_reading_the_schema_stays_cheap_and_keeps_the_sql(source):
    conn = sqlite3.connect(source)
    tables = {t.name: t for t in introspect.read_schema(conn).tables}
    assert tables["docs"].sql.startswith("CREATE TABLE docs")
    assert {i.name: i.sql for i in tables["docs"].indexes}["docs_expr"].startswith("CREATE INDEX docs_expr")
    conn.close()


def test_check_that_postgresql_cannot_evaluate_is_named_and_the_others_still_counted(pg_url, staged):
    spec = make_spec({"people": {"primary_key": ["id"], "checks": [{"sql": '"age" >= 0'}, {"sql": '"age" = TRUE'}],
                                 "columns": {"id": {"type": "bigint"}, "age": {"type": "bigint"},
                                             "pages": {"type": "bigint"}, "words": {"type": "bigint"}}}})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        postgres_ddl.create_tables(conn, spec)
        load_table(conn, spec, "people", staged)
        result = check_check_constraints(TargetTable(conn, spec, "people", {"column_order": [], "columns": {},
                                                                       "primary_key": ["id"]}))
        assert result.metadata["violations"] == {"people_check1": 1}
        assert result.metadata["errors"]["people_check2"].startswith("operator does not exist: bigint = boolean")
        assert result.failing_keys == [{"id": 2}] and not result.passed
