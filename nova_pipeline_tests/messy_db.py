"""Builders of deliberately messy SQLite databases for the bad-input and failure tests.

Value cases live in one table, one column per bad-input class, one row per case
with only that column set, so each row's fate (loaded value or quarantine
reason) is read by id. `VALUE_CASES` says, per column, what each case must become:
`("value", python value)` read back through psycopg, or `("quarantine", reason)`.
Good values outnumber bad ones so `init` proposes the intended type.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from nova_pipeline.core.identifiers import fit_identifier

V = "value"
Q = "quarantine"
INVALID_UTF8 = b"ok\xff\xfe"
HUGE_JSON = json.dumps({"items": [{"n": i, "s": "x" * 40} for i in range(60_000)]})  # ~3.5 MB
DEEP_OK = "[" * 200 + "]" * 200
DEEP_BAD = "[" * 100_000 + "]" * 100_000


def _ts(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# column → (declared type, [(case, stored value, expected)]); a stored value `("sql", expr)` is inserted as SQL.
VALUE_CASES: dict[str, tuple[str, list[tuple[int, object, tuple]]]] = {
    "ints": ("INTEGER", [
        (1, 42, (V, 42)),
        (2, -9223372036854775808, (V, -9223372036854775808)),
        (3, 9223372036854775807, (V, 9223372036854775807)),
        (4, 3.0, (V, 3)),  # INTEGER affinity stores a whole REAL as an integer
        (5, "0", (V, 0)),
        (6, None, (V, None)),
        (7, "12", (V, 12)),
        (8, 7, (V, 7)),
        (9, -1, (V, -1)),
        (10, 2**53 + 1, (V, 2**53 + 1)),
        (11, 100, (V, 100)),
        (20, "abc", (Q, "not an integer")),
        (21, "1,234", (Q, "thousands separator/ambiguous")),
        (22, 3.5, (Q, "REAL with a fraction")),
        (23, 1e20, (Q, "out of range for bigint")),  # beyond int64: SQLite keeps it as REAL
        (24, ("sql", "9e999"), (Q, "out of range for bigint")),  # +Infinity as REAL
        (25, "NaN", (Q, "not an integer")),
    ]),
    "reals": ("REAL", [
        (1, 1.5, (V, 1.5)),
        (2, 2, (V, 2.0)),
        (3, "3.25", (V, 3.25)),
        (4, -1e-300, (V, -1e-300)),
        (5, ("sql", "9e999"), (V, float("inf"))),
        (6, ("sql", "-9e999"), (V, float("-inf"))),
        (7, "Infinity", (V, float("inf"))),
        (8, None, (V, None)),
        (9, 0.1 + 0.2, (V, 0.1 + 0.2)),
        (20, "abc", (Q, "not a number")),
        (21, "1,234.5", (Q, "thousands separator/ambiguous")),
    ]),
    "dates": ("DATETIME", [
        (1, "2024-01-05 10:00:00", (V, _ts(2024, 1, 5, 10))),
        (2, "2024-01-05T10:00:00", (V, _ts(2024, 1, 5, 10))),
        (3, "2024-01-05T10:00:00Z", (V, _ts(2024, 1, 5, 10))),
        (4, "2024-01-05T10:00:00+02:00", (V, _ts(2024, 1, 5, 8))),
        (5, "2024-01-05T10:00:00.123456-05:30", (V, _ts(2024, 1, 5, 15, 30, 0, 123456))),
        (6, "2024-01-05", (V, _ts(2024, 1, 5))),
        (7, 1706000000, (V, datetime.fromtimestamp(1706000000, UTC))),
        (8, 1706000000123, (V, datetime.fromtimestamp(1706000000.123, UTC))),
        (9, "2024-02-29 23:59:59", (V, _ts(2024, 2, 29, 23, 59, 59))),
        (10, None, (V, None)),
        (11, "2024-01-05 10:00", (V, _ts(2024, 1, 5, 10))),
        (12, "1999-12-31T23:59:59.5Z", (V, _ts(1999, 12, 31, 23, 59, 59, 500000))),
        (20, "2025-02-30", (Q, "invalid date")),
        (21, "0000-00-00 00:00:00", (Q, "zero date")),
        (22, "garbage", (Q, "not a recognised date/time")),
        (23, "2024-13-01", (Q, "invalid date")),
        (24, "2024-01-05 25:00:00", (Q, "invalid time of day")),
    ]),
    "julian": ("DATETIME", [
        (1, 2460000.5, (V, _ts(2023, 2, 25))),  # SQLite: datetime(2460000.5, 'julianday')
        (2, 2451545.0, (V, _ts(2000, 1, 1, 12))),
        (3, 2440587.5, (V, _ts(1970, 1, 1))),
        (4, None, (V, None)),
    ]),
    "days": ("DATE", [
        (1, "2024-02-29", (V, date(2024, 2, 29))),
        (2, "1900-01-01", (V, date(1900, 1, 1))),
        (3, "0001-01-01", (V, date(1, 1, 1))),
        (4, "9999-12-31", (V, date(9999, 12, 31))),
        (20, "2023-02-29", (Q, "invalid date")),
    ]),
    "bools": ("BOOLEAN", [
        (1, 0, (V, False)), (2, 1, (V, True)), (3, "true", (V, True)), (4, "false", (V, False)),
        (5, "t", (V, True)), (6, "f", (V, False)), (7, "yes", (V, True)), (8, "no", (V, False)),
        (9, "TRUE", (V, True)), (10, None, (V, None)),
        (20, 2, (Q, "not in the true/false vocabulary")),
        (21, "maybe", (Q, "not in the true/false vocabulary")),
    ]),
    "docs": ("JSON", [
        (1, '{"a": 1, "b": [true, null, "x"]}', (V, {"a": 1, "b": [True, None, "x"]})),
        (2, "[1, 2.5, -3]", (V, [1, 2.5, -3])),
        (3, '"just a string"', (V, "just a string")),
        (4, 42, (V, 42)),
        (5, HUGE_JSON, (V, json.loads(HUGE_JSON))),
        (6, DEEP_OK, (V, json.loads(DEEP_OK))),
        (7, '{"k": "tab\\t nl\\n quote\\" backslash\\\\"}', (V, {"k": 'tab\t nl\n quote" backslash\\'})),
        (8, None, (V, None)),
        (9, '{"emoji": "🚀", "u": "\\u00e9"}', (V, {"emoji": "🚀", "u": "é"})),
        (20, "{bad json", (Q, "invalid JSON")),
        (21, DEEP_BAD, (Q, "JSON nested too deeply")),
        (22, '{"a": "\\u0000"}', (Q, "JSON contains \\u0000 (PostgreSQL jsonb cannot hold it)")),
        (23, '{"a": NaN}', (Q, "invalid JSON")),
    ]),
    "texts": ("TEXT", [
        (1, "tab\there", (V, "tab\there")),
        (2, "new\nline\r\nand cr\r", (V, "new\nline\r\nand cr\r")),
        (3, "back\\slash \\N \\x00", (V, "back\\slash \\N \\x00")),
        (4, "quote's \"double\" `tick`", (V, "quote's \"double\" `tick`")),
        (5, "", (V, "")),
        (6, "NULL", (V, "NULL")),
        (7, "Zoë 李雷 🚀", (V, "Zoë 李雷 🚀")),
        (8, 42, (V, "42")),  # TEXT affinity stores numbers as text
        (9, None, (V, None)),
        (10, ("sql", "CAST(x'68656c6c6f' AS TEXT)"), (V, "hello")),
        (20, "NUL\x00inside", (Q, "NUL character (PostgreSQL text cannot hold NUL)")),
        (21, ("sql", f"CAST(x'{INVALID_UTF8.hex()}' AS TEXT)"), (Q, "invalid UTF-8")),
    ]),
    "untyped": ("", [  # no declared type: every storage class kept as stored; init proposes text
        (1, 42, (V, "42")),
        (2, 1.5, (V, "1.5")),
        (3, "abc", (V, "abc")),
        (4, b"hello", (V, "hello")),
        (5, None, (V, None)),
        (6, 2.0, (V, "2.0")),
        (20, b"\x00\xff", (Q, "invalid UTF-8")),
    ]),
    "blobs": ("BLOB", [
        (1, b"", (V, b"")),
        (2, None, (V, None)),
        (3, b"\x00\x01\xff", (V, b"\x00\x01\xff")),
        (4, "text in a blob column", (V, b"text in a blob column")),
        (5, b"\x89PNG\r\n", (V, b"\x89PNG\r\n")),
        (20, 5, (Q, "number in bytea column")),
    ]),
    "short": ("VARCHAR(5)", [  # overflow: init widens the column to text and says so
        (1, "abc", (V, "abc")),
        (2, "abcde", (V, "abcde")),
        (3, "abcdefghij", (V, "abcdefghij")),
        (4, "ééééé", (V, "ééééé")),
    ]),
    "strict5": ("VARCHAR(5)", [  # the test pins this column to varchar(5) in the spec: overflow is quarantined
        (1, "abc", (V, "abc")),
        (2, "ééééé", (V, "ééééé")),
        (20, "abcdefghij", (Q, "longer than 5 characters")),
    ]),
}


MESSY = "messy"


def row_id(column: str, key: int) -> int:
    """The id of case `key` of a VALUE_CASES column in the `messy` table."""
    return 1000 * (list(VALUE_CASES).index(column) + 1) + key


def build_values_db(path: Path) -> Path:
    """Table `messy`: one column per bad-value class (VALUE_CASES), one row per case holding a value in that
    column only (so a quarantined row names its case); plus `textpk`, a TEXT primary key holding NULLs."""
    conn = sqlite3.connect(path)
    columns = ", ".join(f"{name} {declared}" for name, (declared, _) in VALUE_CASES.items())
    conn.execute(f"CREATE TABLE {MESSY} (id INTEGER PRIMARY KEY, {columns})")
    for column, (_, rows) in VALUE_CASES.items():
        for key, value, _ in rows:
            if isinstance(value, tuple):
                conn.execute(f"INSERT INTO {MESSY} (id, {column}) VALUES (?, {value[1]})", (row_id(column, key),))
            else:
                conn.execute(f"INSERT INTO {MESSY} (id, {column}) VALUES (?, ?)", (row_id(column, key), value))
    conn.execute("CREATE TABLE textpk (code TEXT PRIMARY KEY, label TEXT)")  # SQLite lets NULL into it
    conn.executemany("INSERT INTO textpk VALUES (?, ?)", [("a", "first"), ("b", "second"), (None, "null key 1"),
                                                          (None, "null key 2"), ("c", "third")])
    conn.commit()
    conn.close()
    return path


LONG_TABLE = "a_table_name_that_is_much_longer_than_postgresql_allows_for_identifiers_xyz"
LONG_COL_A = "a_column_name_that_is_much_longer_than_postgresql_allows_for_identifiers_one"
LONG_COL_B = "a_column_name_that_is_much_longer_than_postgresql_allows_for_identifiers_two"
COLLIDING_TABLE = fit_identifier(LONG_TABLE)  # a source name equal to LONG_TABLE's shortened form
ODD_TABLE = 'Odd "Table" select'
WIDE_COLUMNS = 1700


def build_schema_db(path: Path) -> Path:
    """Schema-level messiness: generated columns, WITHOUT ROWID, composite keys, FK orphans and self references,
    FTS5 with shadow tables, a view, a trigger, odd and long identifiers."""
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE gen (id INTEGER PRIMARY KEY, a INTEGER, name TEXT,
                          twice INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL,
                          shout TEXT GENERATED ALWAYS AS (upper(name)) STORED);
        INSERT INTO gen (id, a, name) VALUES (1, 5, 'ann'), (2, NULL, 'bob'), (3, -4, NULL);
        CREATE TABLE wr (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
        INSERT INTO wr VALUES ('b', 2), ('a', 1), ('c', 3);
        CREATE TABLE pairs (a INTEGER, b TEXT, v REAL, PRIMARY KEY (a, b));
        INSERT INTO pairs VALUES (1, 'x', 1.5), (1, 'y', 2.5), (2, 'x', NULL);
        CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
        CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), note TEXT);
        INSERT INTO child VALUES (1, 1, 'ok'), (2, 999, 'orphan'), (3, NULL, 'no parent');
        CREATE TABLE emp (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES emp(id), name TEXT);
        INSERT INTO emp VALUES (1, NULL, 'ceo'), (2, 1, 'cto'), (3, 2, 'dev'), (4, 77, 'lost');
        CREATE VIRTUAL TABLE notes_fts USING fts5(body);
        INSERT INTO notes_fts VALUES ('hello world'), ('full text');
        CREATE VIEW grown_ups AS SELECT * FROM emp WHERE boss IS NULL;
        CREATE TRIGGER emp_audit AFTER INSERT ON emp BEGIN UPDATE emp SET name = name WHERE id = NEW.id; END;
        CREATE TABLE "{LONG_TABLE}" (id INTEGER PRIMARY KEY, "{LONG_COL_A}" TEXT, "{LONG_COL_B}" TEXT);
        INSERT INTO "{LONG_TABLE}" VALUES (1, 'one', 'two');
        CREATE TABLE "{COLLIDING_TABLE}" (id INTEGER PRIMARY KEY, v TEXT);
        INSERT INTO "{COLLIDING_TABLE}" VALUES (1, 'short name'), (2, 'same target once shortened');
        CREATE TABLE "{ODD_TABLE.replace('"', '""')}" ("select" INTEGER PRIMARY KEY, "from" TEXT, "has space" TEXT,
                                   "quo""te" TEXT, "Mixed Case" INTEGER, "ünïcode" TEXT);
        INSERT INTO "{ODD_TABLE.replace('"', '""')}" VALUES (1, 'f', 's p', 'q"t', 7, 'ü'), (2, NULL, '', '''', -7, NULL);
    """)
    conn.commit()
    conn.close()
    return path


def build_wide_db(path: Path) -> Path:
    """A table over PostgreSQL's 1600-column limit next to an ordinary one."""
    conn = sqlite3.connect(path)
    cols = ", ".join(f"c{i} INTEGER" for i in range(WIDE_COLUMNS))
    conn.execute(f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {cols})")
    conn.execute("INSERT INTO wide (id, c0, c1) VALUES (1, 1, 2)")
    conn.execute("CREATE TABLE narrow (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO narrow VALUES (1, 'kept'), (2, 'too')")
    conn.commit()
    conn.close()
    return path


def build_cycle_db(path: Path) -> Path:
    """Two tables referencing each other (an FK cycle), one with an orphan."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE cyc_a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES cyc_b(id));
        CREATE TABLE cyc_b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES cyc_a(id));
        INSERT INTO cyc_a VALUES (1, 1), (2, NULL), (3, 42);
        INSERT INTO cyc_b VALUES (1, 2), (2, 1);
    """)
    conn.commit()
    conn.close()
    return path


def build_big_db(path: Path, rows: int = 400_000) -> Path:
    """One plain table big enough that its load takes seconds (kill/resume tests), plus a small one."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE small (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO small VALUES (1, 'a'), (2, 'b');
        CREATE TABLE big (id INTEGER PRIMARY KEY, k INTEGER, label TEXT, amount REAL, at DATETIME);
    """)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    conn.executemany("INSERT INTO big VALUES (?, ?, ?, ?, ?)", (
        (i, i % 97, f"label number {i} with some padding text", i * 0.25,
         (base + timedelta(seconds=i)).isoformat()) for i in range(1, rows + 1)))
    conn.commit()
    conn.close()
    return path
