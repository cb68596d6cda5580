"""The migration spec: YAML → frozen, typed pydantic models.

A spec names the SQLite source, the staging area, the targets and, per source
table, where it goes and how its columns are cast. Unknown keys and bad values
are rejected at load time with one readable line: file, key path, expectation.
This module imports nothing from Dagster.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PG_TYPES = (
    "smallint", "integer", "bigint", "double precision", "real", "numeric", "text", "boolean",
    "timestamptz", "timestamp", "date", "time", "jsonb", "json", "bytea", "uuid",
)
_SIZED = re.compile(r"^(varchar|char|numeric)\(\d+(,\s*\d+)?\)$")
TIMESTAMP_FORMATS = ("iso8601", "unix_seconds", "unix_millis", "julian_day")
DEFAULT_TIMESTAMP_PARSE = ("iso8601", "unix_seconds", "unix_millis")
DEFAULT_TRUE = (1, "1", "true", "t", "yes", "y")
DEFAULT_FALSE = (0, "0", "false", "f", "no", "n")


class SpecError(ValueError):
    """A spec (or a value in it) is invalid; the message is one line fit for users."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Expectation(Model):
    """Spec-declared expectations on one column, checked in the target (GX)."""

    min: float | None = Field(None, description="Smallest allowed value.")
    max: float | None = Field(None, description="Largest allowed value.")
    values: list[Any] | None = Field(None, alias="in", description="Allowed values.")
    regex: str | None = Field(None, description="Regular expression every non-null text value matches.")


class ColumnSpec(Model):
    """One source column: its target type and how raw values are cast to it."""

    type: str = Field(description="Target PostgreSQL type, e.g. bigint, text, varchar(64), timestamptz, jsonb, bytea.")
    declared: str = Field("", description="The SQLite declared type (informational; cast rules match on it).")
    name: str | None = Field(None, description="Target column name when it differs from the source name.")
    nullable: bool = Field(True, description="False adds NOT NULL in the target.")
    default: str | None = Field(None, description="PostgreSQL DEFAULT expression (translated from SQLite).")
    parse: list[Literal["iso8601", "unix_seconds", "unix_millis", "julian_day"]] | None = Field(
        None, description="Timestamp formats accepted, tried in order (overrides cast rules).")
    true: list[Any] | None = Field(None, description="Raw values read as true (booleans).")
    false: list[Any] | None = Field(None, description="Raw values read as false (booleans).")
    invalid_json: Literal["quarantine", "keep_string"] = Field(
        "quarantine", description="What to do with text that is not valid JSON in a json/jsonb column.")
    expect: Expectation | None = Field(None, description="Expectations checked after the load.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        v = " ".join(v.lower().split())
        if v not in PG_TYPES and not _SIZED.match(v):
            raise ValueError(f"unknown type {v!r}; expected one of {', '.join(PG_TYPES)} or varchar(N)/char(N)/numeric(P,S)")
        return v


class ForeignKey(Model):
    """A foreign key, added in the target after the data is loaded."""

    columns: list[str] = Field(min_length=1, description="Referencing columns (source names).")
    references: str = Field(description="Referenced source table.")
    referenced_columns: list[str] = Field(min_length=1, description="Referenced columns (source names).")
    on_delete: Literal["no action", "restrict", "cascade", "set null", "set default"] = Field(
        "no action", description="ON DELETE action.")


class Index(Model):
    """A secondary index (PostgreSQL) or collection index (MongoDB)."""

    columns: list[str] = Field(min_length=1, description="Indexed columns, in order (prefix '-' for descending in MongoDB).")
    unique: bool = Field(False, description="Unique index.")
    name: str | None = Field(None, description="Index name; derived when omitted.")
    where: str | None = Field(None, description="Partial index predicate (PostgreSQL SQL).")
    partial_filter: dict[str, Any] | None = Field(None, description="Partial index filter (MongoDB).")


class Ttl(Model):
    """MongoDB TTL: documents expire `days` after the date in `field`."""

    field: str = Field(description="Date field the TTL index is built on.")
    days: int = Field(gt=0, description="Days until a document expires.")


class Embed(Model):
    """Embed a child table into this table's documents (MongoDB)."""

    table: str = Field(description="Child source table.")
    on: str = Field(description="Child column holding the parent's key.")
    parent_key: str | None = Field(None, description="Parent column the child refers to (default: the primary key).")
    as_: str = Field(alias="as", description="Field name of the embedded array / sub-document.")
    mode: Literal["array", "document"] = Field("array", description="array (one-to-many) or document (one-to-one).")
    sort: str | None = Field(None, description="Child column to order the array by (prefix '-' for descending).")
    limit: int | None = Field(None, gt=0, description="Keep at most this many children.")
    embed: list[Embed] = Field(default_factory=list, description="Grandchildren embedded into each child.")
    too_large: Literal["quarantine", "split"] = Field(
        "quarantine", description="When a document would exceed 16 MiB: quarantine it or move the children to their own collection.")


class Partition(Model):
    """Time partitioning of a high-volume table."""

    column: str = Field(description="Timestamp column the partitions are cut on.")
    grain: Literal["day", "month"] = Field("day", description="Dagster partition grain.")
    physical: Literal["month", "day"] = Field("month", description="PostgreSQL range-partition size.")
    start: str | None = Field(None, description="First partition (YYYY-MM-DD); default: the first reading in the source.")

    @field_validator("start", mode="before")
    @classmethod
    def _iso_day(cls, v: object) -> str | None:
        if isinstance(v, date):  # YAML reads an unquoted 2024-01-01 as a date
            return v.isoformat()
        if v is not None:
            try:
                date.fromisoformat(str(v))
            except ValueError:
                raise ValueError(f"expected a day as YYYY-MM-DD, got {v!r}") from None
        return v


class TimeSeries(Model):
    """Store a collection as a MongoDB time-series collection when the server supports it."""

    time_field: str = Field(description="Date field.")
    meta_field: str | None = Field(None, description="Field identifying the series (e.g. drone_id).")
    granularity: Literal["seconds", "minutes", "hours"] = Field("seconds", description="Bucket granularity.")


class TableSpec(Model):
    """Where one source table goes and how."""

    target: Literal["postgres", "mongo", "skip"] = Field("postgres", description="Target store.")
    table: str | None = Field(None, description="PostgreSQL target, `table` or `schema.table` (default: source name).")
    collection: str | None = Field(None, description="MongoDB collection (default: source name).")
    primary_key: list[str] = Field(default_factory=list, description="Primary key columns (source names).")
    columns: dict[str, ColumnSpec] = Field(default_factory=dict, description="Columns in source order; all columns when empty.")
    foreign_keys: list[ForeignKey] = Field(default_factory=list, description="Foreign keys.")
    indexes: list[Index] = Field(default_factory=list, description="Secondary indexes.")
    json_columns: list[str] = Field(default_factory=list, description="Columns holding JSON text (shorthand for type jsonb).")
    ttl: Ttl | None = Field(None, description="MongoDB TTL index.")
    embed: list[Embed] = Field(default_factory=list, description="Child tables embedded into this table's documents.")
    reference: dict[str, str] = Field(default_factory=dict, description="MongoDB reference fields: column → referenced collection.")
    partition: Partition | None = Field(None, description="Time partitioning.")
    timeseries: TimeSeries | None = Field(None, description="MongoDB time-series options.")
    validation_action: Literal["error", "warn"] = Field("error", description="MongoDB validator action.")
    max_quarantined_rows: int | None = Field(None, ge=0, description="Quarantined rows above this fail the table's blocking check.")
    max_quarantined_share: float | None = Field(None, ge=0, le=1, description="Quarantined share above this fails the blocking check.")
    owners: list[str] = Field(default_factory=list, description="Owners shown in the Dagster UI.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags shown in the Dagster UI.")
    description: str | None = Field(None, description="What this table holds (shown in the UI).")

    @property
    def pg_schema_table(self) -> tuple[str | None, str | None]:
        """(schema, table) from `table`, schema None when not qualified."""
        if self.table is None:
            return None, None
        schema, _, name = self.table.rpartition(".")
        return (schema or None), name


class CastMatch(Model):
    declared: str | None = Field(None, description="Regex matched (case-insensitive) against the SQLite declared type.")
    type: str | None = Field(None, description="Target type the rule applies to.")


class CastRule(Model):
    """pgloader-style rule: columns matching `match` get `to` and these parse options unless overridden."""

    match: CastMatch = Field(description="Which columns the rule applies to.")
    to: str | None = Field(None, description="Target type.")
    parse: list[Literal["iso8601", "unix_seconds", "unix_millis", "julian_day"]] | None = Field(None, description="Timestamp formats.")
    true: list[Any] | None = Field(None, description="Raw values read as true.")
    false: list[Any] | None = Field(None, description="Raw values read as false.")


class PostgresTarget(Model):
    url: str | None = Field(None, description="postgresql:// URL or env:VAR; empty → POSTGRES_* env vars or the embedded server.")
    schema_: str = Field("public", alias="schema", description="Default schema for tables.")


class MongoTarget(Model):
    uri: str | None = Field(None, description="mongodb:// URI or env:VAR; mongomock:// for the in-process double.")
    database: str = Field("nova", description="Database name.")
    write_concern: int | Literal["majority"] = Field(1, description="w of the write concern.")
    batch_size: int = Field(10_000, gt=0, description="Documents per bulk write.")


class Targets(Model):
    postgres: PostgresTarget | None = Field(default_factory=PostgresTarget, description="PostgreSQL target.")
    mongo: MongoTarget | None = Field(None, description="MongoDB target.")


class Source(Model):
    sqlite: str = Field(description="Path to the SQLite database.")


class SmokeTest(Model):
    """An application query run against a target after the load."""

    name: str = Field(description="Name shown in the report.")
    target: Literal["postgres", "mongo"] = Field("postgres", description="Where the query runs.")
    sql: str | None = Field(None, description="SQL for PostgreSQL.")
    collection: str | None = Field(None, description="MongoDB collection.")
    find: dict[str, Any] | None = Field(None, description="MongoDB filter (count of matches is the result).")
    aggregate: list[dict[str, Any]] | None = Field(None, description="MongoDB aggregation pipeline.")
    expect_rows: int | None = Field(None, description="Expected number of rows / documents.")
    expect_value: Any = Field(None, description="Expected first value of the first row.")
    max_ms: float | None = Field(None, gt=0, description="Latency budget in milliseconds.")


class Backup(Model):
    dest: str = Field("data/backups", description="Directory or fsspec URI for backup sets.")
    schedule: str = Field("0 2 * * *", description="Cron of the nightly backup (BACKUP_SCHEDULE overrides).")
    retention_days: int = Field(7, ge=0, description="Days to keep sets (BACKUP_RETENTION_DAYS overrides).")
    keep_last: int = Field(3, ge=1, description="Always keep the newest K verified sets.")


class Spec(Model):
    """A whole migration."""

    source: Source = Field(description="The SQLite source.")
    staging: str = Field("data/staging", description="Staging directory or fsspec URI.")
    reports: str = Field("data/reports", description="Where migration reports are written.")
    batch_rows: int = Field(100_000, gt=0, description="Rows per Arrow batch: bounds memory.")
    targets: Targets = Field(default_factory=Targets, description="Target stores.")
    tables: dict[str, TableSpec] = Field(description="Source tables, by source name.")
    casts: list[CastRule] = Field(default_factory=list, description="Type rules applied before per-column overrides.")
    on_bad_row: Literal["quarantine", "fail", "null_field"] = Field("quarantine", description="What a value that cannot be cast does.")
    max_quarantined_rows: int | None = Field(None, ge=0, description="Default per-table quarantine tolerance (rows).")
    smoke_tests: list[SmokeTest] = Field(default_factory=list, description="Application queries run after the load.")
    backup: Backup = Field(default_factory=Backup, description="Backup policy.")
    spec_path: str | None = Field(None, exclude=True, description="Where the spec was read from (set by load_spec).")

    @model_validator(mode="after")
    def _references_exist(self) -> Spec:
        for name, t in self.tables.items():
            cols = set(t.columns)
            for c in t.primary_key:
                if cols and c not in cols:
                    raise ValueError(f"tables.{name}.primary_key: column {c!r} is not in tables.{name}.columns")
            for fk in t.foreign_keys:
                if fk.references not in self.tables:
                    raise ValueError(f"tables.{name}.foreign_keys: references unknown table {fk.references!r}")
                if len(fk.columns) != len(fk.referenced_columns):
                    raise ValueError(f"tables.{name}.foreign_keys: {fk.columns} and {fk.referenced_columns} differ in length")
            for e in _walk_embeds(t.embed):
                if e.table not in self.tables:
                    raise ValueError(f"tables.{name}.embed: unknown table {e.table!r}")
            if t.target == "mongo" and self.targets.mongo is None:
                raise ValueError(f"tables.{name}.target: 'mongo' needs targets.mongo")
            if t.target == "postgres" and self.targets.postgres is None:
                raise ValueError(f"tables.{name}.target: 'postgres' needs targets.postgres")
        return self

    def table_items(self, target: str | None = None) -> list[tuple[str, TableSpec]]:
        """(name, spec) of the migrated tables, optionally of one target, in spec order."""
        return [(n, t) for n, t in self.tables.items() if t.target != "skip" and (target is None or t.target == target)]

    def embedded_tables(self) -> set[str]:
        """Source tables that are embedded into a parent (they get no collection of their own)."""
        return {e.table for _, t in self.tables.items() for e in _walk_embeds(t.embed)}

    def resolve(self, relative: str) -> Path:
        """A path from the spec, relative to the spec file's directory when not absolute."""
        p = Path(relative)
        if p.is_absolute() or self.spec_path is None:
            return p
        return Path(self.spec_path).parent / p


def _walk_embeds(embeds: list[Embed]):
    for e in embeds:
        yield e
        yield from _walk_embeds(e.embed)


def _error_line(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc}: {msg}{extra}"


def parse_spec(data: dict[str, Any], path: str = "<spec>") -> Spec:
    """Validate a spec mapping; raise SpecError with file, key path and expectation."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Spec.model_validate({**data, "spec_path": path if path != "<spec>" else None})
    except ValidationError as e:
        raise SpecError(_error_line(path, e)) from None


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and validate a YAML spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{p}: cannot read spec: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{p}:{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    except ValueError as e:  # an unquoted value YAML reads as an impossible date or time
        raise SpecError(f"{p}: invalid value: {e} (quote it if it is not a date)") from None
    return parse_spec(data, str(p))


def dump_spec(spec: Spec) -> str:
    """The spec as YAML (keys with default values omitted)."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"spec_path"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors."""
    return Spec.model_json_schema(by_alias=True)


def resolve_setting(value: str | None) -> str | None:
    """Resolve `env:VAR` indirection; other values are returned as they are."""
    if value and value.startswith("env:"):
        return os.environ.get(value[4:]) or None
    return value


Embed.model_rebuild()
