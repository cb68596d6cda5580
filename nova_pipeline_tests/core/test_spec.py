"""Spec parsing: valid specs load, bad ones fail with file, key path and expectation."""

import json

import pytest

from nova_pipeline.core.spec import SpecError, dump_spec, json_schema, load_spec, parse_spec

MINIMAL = {"source": {"sqlite": "app.sqlite"}, "tables": {"users": {"primary_key": ["id"], "columns": {"id": {"type": "bigint"}}}}}


def write(tmp_path, text):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


def test_minimal_spec_loads_with_defaults(tmp_path):
    spec = parse_spec(MINIMAL, str(tmp_path / "s.yaml"))
    assert spec.tables["users"].target == "postgres"
    assert spec.on_bad_row == "quarantine"
    assert spec.resolve(spec.source.sqlite) == tmp_path / "app.sqlite"


@pytest.mark.parametrize("yaml_text, expected", [
    ("source: {sqlite: a}\ntables: {u: {colums: {}}}\n", "spec.yaml: tables.u.colums: unknown key"),
    ("source: {sqlite: a}\ntables: {u: {target: oracle}}\n", "spec.yaml: tables.u.target: Input should be 'postgres', 'mongo' or 'skip'"),
    ("source: {sqlite: a}\ntables: {u: {columns: {a: {type: strng}}}}\n", "spec.yaml: tables.u.columns.a.type: unknown type 'strng'"),
    ("source: {sqlite: a}\nbatch_rows: 0\ntables: {}\n", "spec.yaml: batch_rows: Input should be greater than 0"),
    ("tables: {}\n", "spec.yaml: source: Field required"),
    ("source: {sqlite: a}\ntables: {u: {primary_key: [nope], columns: {id: {type: bigint}}}}\n",
     "primary_key: column 'nope' is not in tables.u.columns"),
    ("source: {sqlite: a}\ntables: {u: {foreign_keys: [{columns: [a], references: ghost, referenced_columns: [id]}]}}\n",
     "references unknown table 'ghost'"),
    ("source: {sqlite: a}\ntables: {u: {target: mongo}}\n", "tables.u.target: 'mongo' needs targets.mongo"),
    ("source: {sqlite: a}\ntables: [1, 2\n", "invalid YAML"),
    ("- just\n- a list\n", "expected a mapping at the top level"),
    ("source: {sqlite: a}\ntables: {t: {partition: {column: at, start: 2024-13-01}}}\n",
     "spec.yaml: invalid value: month must be in 1..12"),
    ("source: {sqlite: a}\ntables: {t: {partition: {column: at, start: '24/01/01'}}}\n",
     "tables.t.partition.start: expected a day as YYYY-MM-DD"),
])
def test_bad_specs_give_one_line_with_key_path(tmp_path, yaml_text, expected):
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, yaml_text))
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_unquoted_dates_are_read_as_days(tmp_path):
    spec = load_spec(write(tmp_path, "source: {sqlite: a}\ntables: {t: {partition: {column: at, start: 2024-01-01}}}\n"))
    assert spec.tables["t"].partition.start == "2024-01-01"


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")


def test_dump_round_trips(tmp_path):
    spec = parse_spec({**MINIMAL, "tables": {"audit": {"target": "mongo", "ttl": {"field": "at", "days": 90},
                                                         "embed": [{"table": "users", "on": "uid", "as": "who"}]},
                                               **MINIMAL["tables"]},
                       "targets": {"mongo": {"database": "logs"}}})
    again = parse_spec(__import__("yaml").safe_load(dump_spec(spec)))
    assert again.tables == spec.tables
    assert again.tables["audit"].embed[0].as_ == "who"


def test_json_schema_is_published():
    schema = json_schema()
    assert "tables" in schema["properties"]
    json.dumps(schema)
