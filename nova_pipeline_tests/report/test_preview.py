"""preview_markdown: first rows of staged Parquet, secrets and BLOBs elided."""

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from nova_pipeline.report.preview import is_secret_name, preview_markdown
from nova_pipeline.core.staging import Staging


def _stage(tmp_path, table: pa.Table, kind: str = "clean", name: str = "t") -> Staging:
    staging = Staging(str(tmp_path / "staging"))
    with staging.writer(kind, name, table.schema) as w:
        w.write_table(table)
    return staging


def _rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in md.splitlines()[2:]]


def test_first_rows_with_secrets_blobs_and_long_text_elided(tmp_path):
    table = pa.table({
        "id": pa.array(range(1, 9), pa.int64()),
        "email": [f"u{i}@example.org" for i in range(1, 9)],
        "password_hash": [f"$2b$12${i}secret" for i in range(1, 9)],
        "avatar": pa.array([b"\x00" * (10 * i) for i in range(1, 9)], pa.binary()),
        "bio": ["x" * 300] * 8,
        "settings": [json.dumps({"theme": "dark", "api_key": "k-123", "nested": {"client_secret": "s"}})] * 8,
        "created_at": pa.array([datetime(2024, 1, i, tzinfo=UTC) for i in range(1, 9)], pa.timestamp("us", "UTC")),
        "_nova_rowid": pa.array(range(1, 9), pa.int64()),
    })
    md = preview_markdown(_stage(tmp_path, table), "clean", "t", n=3, max_chars=100)
    header, sep, *rows = md.splitlines()
    assert header == "| id | email | password_hash | avatar | bio | settings | created_at |"
    assert sep == "|---|---|---|---|---|---|---|"
    assert len(rows) == 3
    first = _rows(md)[0]
    assert first[:4] == ["1", "u1@example.org", "***", "<10 bytes>"]
    assert first[4] == "x" * 99 + "…"
    assert "k-123" not in md and '"s"' not in md and "secret" not in md.replace("client_secret", "")
    assert json.loads(first[5]) == {"theme": "dark", "api_key": "***", "nested": {"client_secret": "***"}}
    assert first[6] == "2024-01-01T00:00:00+00:00"
    assert _rows(md)[2][3] == "<30 bytes>"


def test_declared_bytea_and_secret_flagged_rows(tmp_path):
    table = pa.table({
        "key": ["site.name", "auth.jwt_secret"],
        "value": ["Nova", "s3cr3t"],
        "is_secret": [False, True],
        "blob_as_text": ["abc", "defg"],
    })
    md = preview_markdown(_stage(tmp_path, table), "clean", "t", {"blob_as_text": "BYTEA"})
    assert _rows(md) == [["site.name", "Nova", "false", "<3 bytes>"], ["auth.jwt_secret", "***", "true", "***"]]
    assert "s3cr3t" not in md


def test_quarantined_value_of_a_secret_column_is_masked(tmp_path):
    table = pa.table({"column": ["password", "age"], "raw_value": ["hunter2", "n/a"], "reason": ["too long", "not an integer"],
                      "row": [json.dumps({"id": 1, "password": "hunter2"}), json.dumps({"id": 2, "age": "n/a"})]})
    md = preview_markdown(_stage(tmp_path, table, kind="quarantine"), "quarantine", "t")
    assert "hunter2" not in md
    assert _rows(md) == [["password", "***", "too long", '{"id":1,"password":"***"}'],
                         ["age", "n/a", "not an integer", '{"id":2,"age":"n/a"}']]


def test_markdown_special_characters_are_escaped(tmp_path):
    md = preview_markdown(_stage(tmp_path, pa.table({"note": ["a|b\nc"]})), "clean", "t")
    assert md.splitlines()[2] == "| a\\|b c |"


def test_missing_and_empty_tables_say_so(tmp_path):
    staging = _stage(tmp_path, pa.table({"id": pa.array([], pa.int64())}))
    assert preview_markdown(staging, "clean", "t") == "_`t` has no clean rows_"
    assert preview_markdown(staging, "raw", "t") == "_no raw Parquet for `t`_"


@pytest.mark.parametrize("name, secret", [
    ("password", True), ("user_password_hash", True), ("API_KEY", True), ("apikey", True), ("private_key_pem", True),
    ("refresh_token", True), ("credential_id", True), ("salt", True), ("email", False), ("name", False), ("keyboard", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret
