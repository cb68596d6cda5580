"""Declared SQLite type + observed storage classes → proposed PostgreSQL type.

Policy: faithful first. A proposed type never changes a value silently
(REAL → double precision, never real; integer affinity → bigint, since SQLite
integers are 64-bit; CHAR(n) → varchar(n), since char(n) pads). When most
values of a column cannot be cast to the type its declaration asks for, the
proposal is text and the note says why. DEFAULT expressions are translated to
PostgreSQL or dropped with a warning, never passed through untranslated.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from dataclasses import dataclass, fields

# SQLite integers are exact in float64 only up to 2**53.
_FLOAT_EXACT = 2**53
_TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
_FALSE_WORDS = {"0", "false", "f", "no", "n", "off"}
BOOLEAN_WORDS = tuple(sorted(_TRUE_WORDS | _FALSE_WORDS))


@dataclass(frozen=True)
class ColumnProfile:
    """What one pass over a column observed (see introspect.profile_table for the exact tests).

    Only the tests the declared type needs are run (PROFILE_NEEDS); the others stay 0 / None.
    """

    rows: int = 0
    nulls: int = 0
    integers: int = 0
    reals: int = 0
    texts: int = 0
    blobs: int = 0
    num_min: float | None = None  # smallest integer or real value
    num_max: float | None = None  # largest, None when text or blobs are present (they sort above numbers)
    ints_01: int = 0  # integers that are 0 or 1
    reals_integral: int = 0  # reals without a fractional part that fit in int64
    text_integers: int = 0  # text that is a well-formed integer fitting in int64
    text_numbers: int = 0  # text that is a well-formed number (integers included)
    text_dates: int = 0  # valid YYYY-MM-DD
    text_datetimes: int = 0  # valid YYYY-MM-DD[ T]HH:MM[:SS[.fff]][zone]
    text_times: int = 0  # valid HH:MM[:SS[.fff]]
    text_booleans: int = 0  # one of BOOLEAN_WORDS, any case
    text_uuids: int = 0  # 8-4-4-4-12 hex
    text_json: int | None = None  # valid JSON text; None when the declared type does not suggest JSON
    text_nul: int = 0  # text containing NUL, which PostgreSQL text cannot hold
    max_text_bytes: int | None = None
    max_text_chars: int | None = None
    blobs_16: int = 0  # 16-byte blobs (binary UUIDs)
    epoch_seconds: int = 0  # numbers in 1973..2103 read as unix seconds
    epoch_millis: int = 0  # numbers in 1973..2103 read as unix milliseconds
    julian_days: int = 0  # reals in 1859..2132 read as julian day numbers
    over_scale: int | None = None  # numbers with more decimals than a declared NUMERIC(p,s) scale

    @property
    def non_null(self) -> int:
        return self.rows - self.nulls

    def storage(self) -> dict[str, int]:
        """Values per SQLite storage class (typeof)."""
        return {"null": self.nulls, "integer": self.integers, "real": self.reals, "text": self.texts, "blob": self.blobs}

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Inference:
    """A proposed PostgreSQL type and what moving the observed values into it takes.

    rows_needing_cast: values not stored in the target's own SQLite form that
    convert exactly (text '42' into bigint, ISO text or epoch numbers into
    timestamptz). rows_to_quarantine: values that cannot be converted.
    """

    pg_type: str
    rows_needing_cast: int = 0
    rows_to_quarantine: int = 0
    note: str = ""
    parse: tuple[str, ...] | None = None  # timestamp formats, set when numbers were seen


def affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (datatype3.html §3.1, rules in order)."""
    d = declared.upper()
    if "INT" in d:
        return "integer"
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return "text"
    if "BLOB" in d or not d.strip():
        return "blob"
    if "REAL" in d or "FLOA" in d or "DOUB" in d:
        return "real"
    return "numeric"


def declared_scale(declared: str) -> tuple[int, int] | None:
    """(precision, scale) of a DECIMAL/NUMERIC(p[,s]) declaration, else None."""
    m = re.match(r"^\s*(?:DECIMAL|NUMERIC|DEC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", declared, re.I)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def declared_target(declared: str) -> str | None:
    """The type a declaration asks for; None when only the stored values can tell."""
    d = " ".join(declared.upper().split())
    base = d.split("(")[0].strip()
    size = re.search(r"\(\s*(\d+)\s*\)", d)
    aff = affinity(d)
    if base in ("BOOL", "BOOLEAN"):
        return "boolean"
    if base.startswith(("DATETIME", "TIMESTAMP")):
        return "timestamptz"
    if base == "DATE":
        return "date"
    if base == "TIME":
        return "time"
    if base in ("JSON", "JSONB"):
        return "jsonb"
    if base in ("UUID", "GUID", "UNIQUEIDENTIFIER"):
        return "uuid"
    if aff == "text" and size and "CLOB" not in d and "TEXT" not in d:
        return f"varchar({size.group(1)})"
    if (ps := declared_scale(d)) is not None:
        return f"numeric({ps[0]},{ps[1]})"
    if aff == "integer":
        return "bigint"
    if aff == "real":
        return "double precision"
    if aff == "text":
        return "text"
    if aff == "blob":
        return "bytea" if d else None
    return "numeric" if base in ("NUMERIC", "DECIMAL", "DEC", "NUMBER", "MONEY") else None


def _by_storage(p: ColumnProfile) -> tuple[str, str]:
    """Type and note for a column whose declaration does not decide (no type, odd names)."""
    present = [k for k, n in p.storage().items() if k != "null" and n]
    if not present:
        return "text", "no values to infer from; text"
    if present == ["integer"]:
        return "bigint", "only integers stored"
    if set(present) <= {"integer", "real"}:
        return "double precision", "only numbers stored"
    if present == ["text"]:
        return "text", "only text stored"
    if present == ["blob"]:
        return "bytea", "only blobs stored"
    return "text", f"mixed storage classes ({', '.join(present)}); text"


def _fit(pg_type: str, p: ColumnProfile) -> tuple[str, int, int, str, tuple[str, ...] | None]:
    """(type, cast, quarantine, note, parse) of moving the profiled values into pg_type."""
    base = pg_type.split("(")[0]
    note, parse = "", None
    if base == "bigint":
        cast = p.reals_integral + p.text_integers
        quarantine = p.reals - p.reals_integral + p.texts - p.text_integers + p.blobs
    elif base == "double precision":
        if p.integers and (_beyond_float(p.num_min) or _beyond_float(p.num_max)):
            return _fit("numeric", p)[:3] + ("integers beyond 2^53 would lose precision in double precision; numeric", None)
        cast = p.integers + p.text_numbers
        quarantine = p.texts - p.text_numbers + p.blobs
    elif base == "numeric":
        cast = p.text_numbers
        quarantine = p.texts - p.text_numbers + p.blobs
        if pg_type != "numeric":
            precision, scale = map(int, pg_type[len("numeric("):-1].split(","))
            limit = 10 ** (precision - scale)
            if p.over_scale:
                why = f"{p.over_scale} values have more than {scale} decimals, which {pg_type} would round; proposed as numeric"
                return _fit("numeric", p)[:3] + (why, None)
            if p.num_max is None and p.integers + p.reals or any(
                    v is not None and abs(v) >= limit for v in (p.num_min, p.num_max)):
                return _fit("numeric", p)[:3] + (f"values of {limit:g} or more do not fit {pg_type}; proposed as numeric", None)
    elif base in ("text", "varchar"):
        if base == "varchar" and (p.max_text_chars or 0) > int(pg_type[8:-1]):
            return _fit("text", p)[:3] + (f"values up to {p.max_text_chars} characters exceed {pg_type}; proposed as text (pin {pg_type} "
                                         "to quarantine the longer values)", None)
        cast = p.integers + p.reals + p.blobs
        quarantine = p.text_nul
        if p.blobs:
            note = f"{p.blobs} BLOB values must decode as UTF-8"
    elif base == "bytea":
        cast = p.integers + p.reals + p.texts
        quarantine = 0
    elif base == "boolean":
        cast = p.text_booleans
        quarantine = p.integers - p.ints_01 + p.reals + p.texts - p.text_booleans + p.blobs
    elif base in ("timestamptz", "date"):
        if base == "date" and p.text_datetimes:
            type_, cast, quarantine, _, parse = _fit("timestamptz", p)
            why = f"{p.text_datetimes} values carry a time of day that date would drop; timestamptz"
            return type_, cast, quarantine, why, parse
        cast = p.text_dates + p.text_datetimes + p.epoch_seconds + p.epoch_millis + p.julian_days
        quarantine = p.non_null - cast
        numeric = [("unix_seconds", p.epoch_seconds), ("unix_millis", p.epoch_millis), ("julian_day", p.julian_days)]
        if any(n for _, n in numeric):
            parse = ("iso8601",) * bool(p.text_dates + p.text_datetimes) + tuple(f for f, n in numeric if n)
    elif base == "time":
        cast = p.text_times
        quarantine = p.non_null - cast
    elif base == "jsonb":
        cast = p.integers + p.reals
        quarantine = p.blobs + (p.texts - p.text_json if p.text_json is not None else p.text_nul)
    elif base == "uuid":
        cast = p.blobs_16
        quarantine = p.non_null - p.text_uuids - p.blobs_16
    else:
        raise ValueError(f"no fitting rule for PostgreSQL type {pg_type!r}")
    return pg_type, cast, quarantine, note, parse


def _beyond_float(v: float | None) -> bool:
    return v is not None and abs(v) > _FLOAT_EXACT


# Profile tests each proposed type needs beyond the storage-class counts every column gets. Each test
# costs a share of an aggregate step per row, so only what infer_type reads for that type is measured.
PROFILE_NEEDS: dict[str | None, tuple[str, ...]] = {
    None: ("num_min", "num_max", "text_nul", "max_text_bytes"),
    "bigint": ("reals_integral", "text_integers"),
    "double precision": ("text_numbers",),  # REAL affinity stores every number as a real: no 2^53 question
    "numeric": ("text_numbers", "num_min", "num_max", "over_scale"),
    "text": ("text_nul", "max_text_bytes"),
    "varchar": ("text_nul", "max_text_bytes", "max_text_chars"),
    "bytea": (),
    "boolean": ("ints_01", "text_booleans"),
    "timestamptz": ("text_dates", "text_datetimes", "epoch_seconds", "epoch_millis", "julian_days"),
    "date": ("text_dates", "text_datetimes", "epoch_seconds", "epoch_millis", "julian_days"),
    "time": ("text_times",),
    "jsonb": ("text_json", "text_nul", "max_text_bytes"),
    "uuid": ("text_uuids", "blobs_16"),
}


def profile_needs(declared: str) -> tuple[str, ...]:
    """Names of the ColumnProfile tests infer_type uses for this declared type."""
    wanted = declared_target(declared)
    return PROFILE_NEEDS[wanted.split("(")[0] if wanted else None]


def infer_type(declared: str, profile: ColumnProfile) -> Inference:
    """Propose a PostgreSQL type from the declared type and the observed values (faithful first)."""
    wanted = declared_target(declared)
    why = ""
    if wanted is None:
        wanted, why = _by_storage(profile)
    pg_type, cast, quarantine, note, parse = _fit(wanted, profile)
    note = note or why
    if pg_type != "text" and quarantine * 2 > profile.non_null:
        note = f"{quarantine} of {profile.non_null} values cannot be cast to {pg_type}; text keeps them as they are"
        pg_type, cast, quarantine, _, parse = _fit("text", profile)
    elif quarantine:
        note = "; ".join(filter(None, [note, f"{quarantine} values cannot be cast to {pg_type} and will be quarantined"]))
    return Inference(pg_type, cast, quarantine, note, parse)


_BSON = {
    "smallint": "int", "integer": "int", "bigint": "long", "double precision": "double", "real": "double",
    "numeric": "decimal", "boolean": "bool", "timestamptz": "date", "timestamp": "date", "date": "date",
    "jsonb": "object", "json": "object", "bytea": "binData",
}


def bson_type(pg_type: str) -> str:
    """The BSON type a value of pg_type becomes in MongoDB (text-like and uuid/time → string)."""
    return _BSON.get(pg_type.split("(")[0], "string")


_UTC = "(now() AT TIME ZONE 'UTC')"
_TS_TEXT = f"to_char({_UTC}, 'YYYY-MM-DD HH24:MI:SS')"
_DATE_TEXT = f"to_char({_UTC}, 'YYYY-MM-DD')"
_TIME_TEXT = f"to_char({_UTC}, 'HH24:MI:SS')"
# SQLite "now" defaults (keys lower-cased, without spaces) → (what they produce, typed form, text form).
# A text target keeps SQLite's text format; typed targets get the PostgreSQL clock.
_NOW_FORMS = {
    "current_timestamp": ("ts", "CURRENT_TIMESTAMP", _TS_TEXT),
    "datetime('now')": ("ts", "now()", _TS_TEXT),
    "datetime('now','localtime')": ("ts", "now()", "to_char(now(), 'YYYY-MM-DD HH24:MI:SS')"),
    "strftime('%y-%m-%d%h:%m:%s','now')": ("ts", "now()", _TS_TEXT),
    "strftime('%y-%m-%dt%h:%m:%fz','now')": ("ts", "now()", f"to_char({_UTC}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"),
    "current_date": ("date", "CURRENT_DATE", _DATE_TEXT),
    "date('now')": ("date", "CURRENT_DATE", _DATE_TEXT),
    "current_time": ("time", f"{_UTC}::time(0)", _TIME_TEXT),
    "time('now')": ("time", f"{_UTC}::time(0)", _TIME_TEXT),
}
_EPOCH_FORMS = ("strftime('%s','now')", "unixepoch()", "unixepoch('now')")
_EPOCH = "extract(epoch from now())::bigint"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_HEX = re.compile(r"^[+-]?0x[0-9a-f]+$", re.I)
_KINDS = {
    "bigint": "int", "integer": "int", "smallint": "int", "double precision": "num", "real": "num", "numeric": "num",
    "text": "text", "varchar": "text", "char": "text", "boolean": "bool", "timestamptz": "ts", "timestamp": "ts",
    "date": "date", "time": "time", "jsonb": "json", "json": "json", "uuid": "uuid", "bytea": "bytea",
}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _unwrap(expr: str) -> str:
    """Strip redundant outer parentheses: '((0))' → '0', but not '(a)+(b)'."""
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, ch in enumerate(expr):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0 and i < len(expr) - 1:
                return expr
        expr = expr[1:-1].strip()
    return expr


def translate_default(sqlite_default: str | None, pg_type: str) -> tuple[str | None, str | None]:
    """(PostgreSQL DEFAULT expression or None, warning or None) for a SQLite DEFAULT on a pg_type column."""
    if sqlite_default is None:
        return None, None
    expr = _unwrap(sqlite_default.strip())
    kind = _KINDS[pg_type.split("(")[0]]
    key = re.sub(r"\s+", "", expr).lower().replace('"', "'")
    translated: str | None = None
    if key == "null":
        return None, None
    if key in _NOW_FORMS:
        produces, typed, as_text = _NOW_FORMS[key]
        if kind == "text":
            translated = as_text
        elif kind == "date" and produces != "time":
            translated = "CURRENT_DATE"
        elif kind == produces or (kind == "ts" and produces == "date"):
            translated = typed
    elif key in _EPOCH_FORMS:
        translated = {"int": _EPOCH, "num": _EPOCH, "ts": "now()", "text": f"({_EPOCH})::text"}.get(kind)
    elif key in ("true", "false"):
        truth = key == "true"
        digit = str(int(truth))
        translated = {"bool": key.upper(), "int": digit, "num": digit, "text": _quote(digit)}.get(kind)
    elif _NUMBER.match(expr) or _HEX.match(expr):
        translated = _number_default(expr, kind)
    elif len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "'\"":
        translated = _string_default(expr[1:-1].replace(expr[0] * 2, expr[0]), pg_type, kind)
    elif re.fullmatch(r"[xX]'([0-9a-fA-F]{2})*'", expr) and kind == "bytea":
        translated = _quote("\\x" + expr[2:-1].lower())
    if translated is None:
        return None, f"default {sqlite_default} has no PostgreSQL {pg_type} equivalent; dropped"
    return translated, None


def _number_default(expr: str, kind: str) -> str | None:
    if _HEX.match(expr):
        expr = str(int(expr, 16))
    is_int = re.fullmatch(r"[+-]?\d+", expr) is not None
    if kind == "int":
        return str(int(expr)) if is_int and abs(int(expr)) < 2**63 else None
    if kind == "num":
        return expr
    if kind == "bool":
        return {"0": "FALSE", "1": "TRUE"}.get(expr.lstrip("+"))
    if kind == "text":
        return _quote(expr)
    if kind == "json" and _is_json(expr):
        return _quote(expr)
    return None


def _string_default(value: str, pg_type: str, kind: str) -> str | None:
    if "\x00" in value:
        return None
    ok = {
        "text": lambda v: pg_type == "text" or len(v) <= int(pg_type[len("varchar("):-1]),
        "int": lambda v: re.fullmatch(r"\s*[+-]?\d+\s*", v) is not None and abs(int(v)) < 2**63,
        "num": _is_finite_number,
        "ts": lambda v: _parses(dt.datetime.fromisoformat, v),
        "date": lambda v: _parses(dt.date.fromisoformat, v),
        "time": lambda v: _parses(dt.time.fromisoformat, v),
        "json": _is_json,
        "uuid": lambda v: _parses(uuid.UUID, v),
        "bool": lambda v: v.strip().lower() in _TRUE_WORDS | _FALSE_WORDS,
        "bytea": lambda v: True,
    }[kind]
    if not ok(value):
        return None
    if kind == "bool":
        return "TRUE" if value.strip().lower() in _TRUE_WORDS else "FALSE"
    if kind == "bytea":
        return _quote("\\x" + value.encode("utf-8").hex())
    return _quote(value)


def _parses(parser, value: str) -> bool:
    try:
        parser(value)
    except ValueError:
        return False
    return True


def _is_finite_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_json(value: str) -> bool:
    return _parses(json.loads, value)
