"""Casts of one raw Arrow column (export's contract) to its target type, with per-row failure reasons.

A raw column is int64 (INTEGER), float64 (REAL), binary (TEXT or BLOB bytes),
null (only NULLs) or the mixed struct {t, i, r, b}. It is split into one array
per storage class (null where the row holds another class); each target type
casts the classes it accepts with pyarrow.compute and names what is wrong with
the rest. Python runs per value only where no vectorised form exists (JSON,
exact decimals, rows of a batch that hold invalid UTF-8).

Reasons are short, stable categories (they are counted per column); the
offending value itself is shown by the quarantine's raw_value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from nova_pipeline.core.spec import DEFAULT_FALSE, DEFAULT_TIMESTAMP_PARSE, DEFAULT_TRUE, ColumnSpec, Spec

_INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_FLOAT4_MAX = 3.4028234663852886e38
_JSONB_MAX_BYTES = 255 * 1024 * 1024
_SIZED = re.compile(r"^(varchar|char|numeric)\((\d+)(?:,\s*(\d+))?\)$")
_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_SPECIAL_FLOAT = r"(?i)^[+-]?(nan|inf|infinity)$"
_ISO = (r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
        r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
        r"\s*(?P<z>[Zz]|[+-]\d{2}(?::?\d{2})?)?$")
_TIME = r"^(?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?$"
_UUID_HEX = r"^[0-9a-f]{32}$"
_JSON_NUL = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
_US_PER_DAY = 86_400_000_000
_MIN_US = -62135596800 * 1_000_000  # 0001-01-01: Python datetime (and so BSON via pymongo) cannot go below
_MAX_US = 253402300800 * 1_000_000  # 10000-01-01, exclusive


@dataclass(frozen=True)
class CastOptions:
    """Effective parse options of one column."""

    parse: tuple[str, ...] = DEFAULT_TIMESTAMP_PARSE
    true: tuple = DEFAULT_TRUE
    false: tuple = DEFAULT_FALSE


@dataclass(frozen=True)
class CastOutcome:
    """Cast values (null where the source is NULL or the cast failed) and why rows failed."""

    values: pa.Array
    failed: pa.Array | None  # bool per row, None when no row failed
    reasons: pa.Array  # string per row, null where the row did not fail


def cast_options(spec: Spec, column: ColumnSpec) -> CastOptions:
    """Per option: the column's own value > the first matching spec `casts` rule that sets it > defaults."""
    rules = [r for r in spec.casts if _rule_matches(r.match, column)]

    def pick(name: str, default):
        own = getattr(column, name)
        if own is not None:
            return tuple(own)
        return next((tuple(getattr(r, name)) for r in rules if getattr(r, name) is not None), default)

    return CastOptions(parse=pick("parse", DEFAULT_TIMESTAMP_PARSE), true=pick("true", DEFAULT_TRUE),
                       false=pick("false", DEFAULT_FALSE))


def _rule_matches(match, column: ColumnSpec) -> bool:
    if match.declared is None and match.type is None:
        return False
    if match.declared is not None and not re.search(match.declared, column.declared, re.IGNORECASE):
        return False
    return match.type is None or " ".join(match.type.lower().split()) == column.type


def arrow_type(pg_type: str) -> pa.DataType:
    """The clean-Parquet Arrow type of a PostgreSQL type (docs/architecture.md)."""
    t = " ".join(pg_type.lower().split())
    base = _SIZED.match(t).group(1) if _SIZED.match(t) else t
    types = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(), "double precision": pa.float64(),
             "real": pa.float32(), "numeric": pa.string(), "text": pa.string(), "varchar": pa.string(),
             "char": pa.string(), "uuid": pa.string(), "boolean": pa.bool_(), "timestamptz": pa.timestamp("us", "UTC"),
             "timestamp": pa.timestamp("us"), "date": pa.date32(), "time": pa.time64("us"), "json": pa.string(),
             "jsonb": pa.string(), "bytea": pa.binary()}
    if base not in types:
        raise ValueError(f"no Arrow type for PostgreSQL type {pg_type!r}")
    return types[base]


@dataclass
class _Parts:
    """A raw column split by storage class; each array is null where the row holds another class."""

    n: int
    i: pa.Array  # int64
    r: pa.Array  # float64
    b: pa.Array  # binary (TEXT, or BLOB when `blob` says so)
    blob: pa.Array  # bool: the b value is a BLOB
    null: pa.Array  # bool: the source value is NULL


def _split(raw: pa.Array | pa.ChunkedArray, blob: bool) -> _Parts:
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks() if raw.num_chunks != 1 else raw.chunk(0)
    n = len(raw)
    none = {t: pa.nulls(n, t) for t in (pa.int64(), pa.float64(), pa.binary())}
    if pa.types.is_struct(raw.type):
        t = pc.fill_null(raw.field("t"), "null")
        is_null = pc.or_(pc.is_null(raw), pc.equal(t, "null"))

        def keep(arr, classes):
            return pc.if_else(pc.and_not(pc.is_in(t, pa.array(classes)), is_null), arr, pa.scalar(None, arr.type))

        return _Parts(n, keep(raw.field("i"), ["integer"]), keep(raw.field("r"), ["real"]),
                      keep(raw.field("b"), ["text", "blob"]), pc.equal(t, "blob"), is_null)
    is_null = pc.is_null(raw)
    if pa.types.is_integer(raw.type):
        return _Parts(n, raw.cast(pa.int64()), none[pa.float64()], none[pa.binary()], _false(n), is_null)
    if pa.types.is_floating(raw.type):
        return _Parts(n, none[pa.int64()], raw.cast(pa.float64()), none[pa.binary()], _false(n), is_null)
    if pa.types.is_binary(raw.type) or pa.types.is_string(raw.type):
        b = raw.cast(pa.binary())
        return _Parts(n, none[pa.int64()], none[pa.float64()], b, pc.fill_null(pc.is_valid(b), False) if blob
                      else _false(n), is_null)
    if pa.types.is_null(raw.type):
        return _Parts(n, none[pa.int64()], none[pa.float64()], none[pa.binary()], _false(n), _true(n))
    raise TypeError(f"unexpected raw Arrow type {raw.type}")


def _false(n: int) -> pa.Array:
    return pa.array(np.zeros(n, dtype=bool))


def _true(n: int) -> pa.Array:
    return pa.array(np.ones(n, dtype=bool))


class _Failures:
    """First reason per row; later failures do not overwrite earlier ones."""

    def __init__(self, n: int):
        self.reasons = pa.nulls(n, pa.string())

    def add(self, mask: pa.Array, reason: str) -> None:
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            self.reasons = pc.if_else(pc.and_(mask, pc.is_null(self.reasons)), reason, self.reasons)

    def outcome(self, values: pa.Array) -> CastOutcome:
        failed = pc.is_valid(self.reasons)
        if not pc.any(failed).as_py():
            return CastOutcome(values, None, self.reasons)
        return CastOutcome(pc.if_else(failed, pa.scalar(None, values.type), values), failed, self.reasons)


def _text(b: pa.Array, fails: _Failures) -> pa.Array:
    """Binary → string; rows holding invalid UTF-8 fail and become null."""
    try:
        return b.cast(pa.string())
    except pa.ArrowInvalid:
        ok = [v is None or _is_utf8(v) for v in b.to_pylist()]
        mask = pc.invert(pa.array(ok))
        fails.add(mask, "invalid UTF-8")
        return pc.if_else(mask, pa.scalar(None, pa.binary()), b).cast(pa.string())


def _is_utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _valid(arr: pa.Array) -> pa.Array:
    return pc.is_valid(arr)


def _coalesce(typ: pa.DataType, *arrays: pa.Array) -> pa.Array:
    # Unchecked: integers beyond 2^53 become the nearest double; callers that must stay exact flag them.
    return pc.coalesce(*[a.cast(typ, safe=False) for a in arrays])


def cast_column(raw: pa.Array | pa.ChunkedArray, column: ColumnSpec, rules: CastOptions, *,
                blob: bool = False) -> CastOutcome:
    """Cast a raw column to `column.type`; `blob` says a native binary column holds BLOBs (not TEXT)."""
    parts = _split(raw, blob)
    fails = _Failures(parts.n)
    t = column.type
    base = _SIZED.match(t).group(1) if _SIZED.match(t) else t
    if base in _INT_RANGES:
        values = _to_int(parts, t, fails)
    elif base in ("double precision", "real"):
        values = _to_float(parts, t, fails)
    elif base == "numeric":
        values = _to_numeric(parts, t, fails)
    elif base == "boolean":
        values = _to_bool(parts, rules, fails)
    elif base in ("timestamptz", "timestamp", "date"):
        values = _to_timestamp(parts, base, rules, fails)
    elif base == "time":
        values = _to_time(parts, fails)
    elif base in ("text", "varchar", "char"):
        values = _to_text(parts, t, fails)
    elif base in ("json", "jsonb"):
        values = _to_json(parts, column.invalid_json, fails)
    elif base == "bytea":
        values = _to_bytea(parts, fails)
    elif base == "uuid":
        values = _to_uuid(parts, fails)
    else:
        raise ValueError(f"no cast to {t!r}")
    if not column.nullable:
        fails.add(parts.null, "NULL in NOT NULL column")
    return fails.outcome(values)


def _blob_fails(parts: _Parts, fails: _Failures, target: str) -> pa.Array:
    """BLOBs cannot become numbers, booleans or times; returns b without them."""
    fails.add(parts.blob, f"BLOB in {target} column")
    return pc.if_else(parts.blob, pa.scalar(None, pa.binary()), parts.b)


def _to_int(parts: _Parts, t: str, fails: _Failures) -> pa.Array:
    lo, hi = _INT_RANGES[t]
    fails.add(pc.or_(pc.less(parts.i, lo), pc.greater(parts.i, hi)), f"out of range for {t}")
    found = [parts.i]
    if _present(parts.r):
        found.append(_real_to_int(parts.r, t, fails))
    if _present(parts.b):
        found.append(_text_to_int(parts, t, fails))
    values = pc.coalesce(*found)
    in_range = pc.and_(pc.greater_equal(values, lo), pc.less_equal(values, hi))
    return pc.if_else(in_range, values, pa.scalar(None, pa.int64())).cast(arrow_type(t))


def _present(values: pa.Array) -> bool:
    """True when some row holds a value: a storage class no row holds needs no cast work."""
    return values.null_count < len(values)


def _real_to_int(r: pa.Array, t: str, fails: _Failures) -> pa.Array:
    lo, hi = _INT_RANGES[t]
    whole = pc.equal(pc.floor(r), r)
    fails.add(pc.and_(pc.is_finite(r), pc.invert(whole)), "REAL with a fraction")
    r_ok = pc.and_(pc.and_(whole, pc.greater_equal(r, float(lo))), pc.less(r, float(hi) + 1))
    fails.add(pc.and_(pc.invert(r_ok), pc.or_(whole, pc.invert(pc.is_finite(r)))), f"out of range for {t}")
    return pc.if_else(r_ok, r, pa.scalar(None, pa.float64())).cast(pa.int64(), safe=False)


def _text_to_int(parts: _Parts, t: str, fails: _Failures) -> pa.Array:
    lo, hi = _INT_RANGES[t]
    s = pc.utf8_trim_whitespace(_text(_blob_fails(parts, fails, t), fails))
    fails.add(pc.match_substring_regex(s, _THOUSANDS), "thousands separator/ambiguous")
    g = _groups(pc.extract_regex(s, r"^(?P<sign>[+-]?)0*(?P<d>\d+)(?:\.0*)?$"))
    fails.add(pc.and_(_valid(s), pc.is_null(g["d"])), "not an integer")
    text = pc.binary_join_element_wise(g["sign"], g["d"], "")
    long = pc.fill_null(pc.greater(pc.utf8_length(g["d"]), 18), False)
    s_int = pc.if_else(long, pa.scalar(None, pa.string()), text).cast(pa.int64())
    if pc.any(long).as_py():
        # More than 18 digits may not fit int64: exact check in Python for those rare values.
        big = [int(v) if lg else None for lg, v in zip(long.to_pylist(), text.to_pylist())]
        fits = pa.array([None if v is None else lo <= v <= hi for v in big], pa.bool_())
        fails.add(pc.invert(fits), f"out of range for {t}")
        s_int = pc.coalesce(s_int, pa.array([v if v is not None and lo <= v <= hi else None for v in big], pa.int64()))
    fails.add(pc.or_(pc.less(s_int, lo), pc.greater(s_int, hi)), f"out of range for {t}")
    return s_int


_EXACT_DOUBLE_INT = 2**53


def _to_float(parts: _Parts, t: str, fails: _Failures) -> pa.Array:
    found = [parts.i, parts.r]
    if _present(parts.b):
        s = pc.utf8_trim_whitespace(_text(_blob_fails(parts, fails, t), fails))
        fails.add(pc.match_substring_regex(s, _THOUSANDS), "thousands separator/ambiguous")
        numeric = pc.or_(pc.match_substring_regex(s, _NUMBER), pc.match_substring_regex(s, _SPECIAL_FLOAT))
        fails.add(pc.invert(numeric), "not a number")
        found.append(pc.if_else(numeric, s, pa.scalar(None, pa.string())).cast(pa.float64()))
    values = _coalesce(pa.float64(), *found)
    if _present(parts.i):
        inexact = pc.greater(pc.abs(parts.i), _EXACT_DOUBLE_INT)
        fails.add(inexact, f"integer too large for {t} to hold exactly")
        values = pc.if_else(pc.fill_null(inexact, False), pa.scalar(None, pa.float64()), values)
    if t == "real":
        too_big = pc.and_(pc.is_finite(values), pc.greater(pc.abs(values), _FLOAT4_MAX))
        fails.add(too_big, "out of range for real")
        return pc.if_else(too_big, pa.scalar(None, pa.float64()), values).cast(pa.float32(), safe=False)
    return values


def _to_numeric(parts: _Parts, t: str, fails: _Failures) -> pa.Array:
    m = _SIZED.match(t)
    precision, scale = (int(m.group(2)), int(m.group(3) or 0)) if m else (None, None)
    s = pc.utf8_trim_whitespace(_text(_blob_fails(parts, fails, t), fails))
    fails.add(pc.match_substring_regex(s, _THOUSANDS), "thousands separator/ambiguous")
    # REAL → its shortest round-trip text, then exact Decimal from that text (never through float arithmetic).
    texts = pc.coalesce(parts.i.cast(pa.string()), parts.r.cast(pa.string()), s).to_pylist()
    out, reasons = [], []
    for v in texts:
        value, reason = _decimal_text(v, precision, scale) if v is not None else (None, None)
        out.append(value)
        reasons.append(reason)
    for reason in {r for r in reasons if r}:
        fails.add(pa.array([r == reason for r in reasons]), reason)
    return pa.array(out, pa.string())


def _decimal_text(v: str, precision: int | None, scale: int | None) -> tuple[str | None, str | None]:
    try:
        d = Decimal(v)
    except InvalidOperation:
        return None, "not a number"
    if not d.is_finite():
        if precision is not None:
            return None, f"{v} does not fit numeric({precision},{scale})"
        return ("NaN" if d.is_nan() else "Infinity" if d > 0 else "-Infinity"), None
    if precision is not None:
        if d != d.quantize(Decimal(1).scaleb(-scale)) if d.adjusted() < 1000 else True:
            return None, f"more than {scale} decimal places for numeric({precision},{scale})"
        if d != 0 and d.adjusted() + 1 > precision - scale:
            return None, f"too many digits for numeric({precision},{scale})"
    return format(d, "f"), None


def _vocab(items: tuple) -> tuple[list[int], list[str]]:
    ints = [int(v) for v in items if isinstance(v, (bool, int, float)) and float(v).is_integer()]
    texts = [str(v).lower() for v in items if isinstance(v, (str, bool))]
    return ints, texts


def _to_bool(parts: _Parts, rules: CastOptions, fails: _Failures) -> pa.Array:
    t_int, t_txt = _vocab(rules.true)
    f_int, f_txt = _vocab(rules.false)
    s = pc.utf8_lower(pc.utf8_trim_whitespace(_text(_blob_fails(parts, fails, "boolean"), fails)))
    whole = pc.equal(pc.floor(parts.r), parts.r)
    num = pc.coalesce(parts.i, pc.if_else(whole, parts.r, pa.scalar(None, pa.float64())).cast(pa.int64(), safe=False))
    is_true = pc.or_(pc.is_in(num, pa.array(t_int, pa.int64())), pc.is_in(s, pa.array(t_txt, pa.string())))
    is_false = pc.or_(pc.is_in(num, pa.array(f_int, pa.int64())), pc.is_in(s, pa.array(f_txt, pa.string())))
    present = pc.invert(parts.null)
    fails.add(pc.and_(present, pc.invert(pc.or_(is_true, is_false))), "not in the true/false vocabulary")
    return pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))


def _numeric_seconds(x: pa.Array, parse: tuple[str, ...], fails: _Failures) -> pa.Array:
    """Numbers (float64) → microseconds since the epoch, by the first numeric format in `parse`."""
    numeric = [f for f in parse if f != "iso8601"]
    if not numeric:
        fails.add(_valid(x), "number, but parse allows only iso8601")
        return pa.nulls(len(x), pa.float64())
    first = numeric[0]
    if first == "julian_day":
        return pc.multiply(pc.subtract(x, 2440587.5), float(_US_PER_DAY))
    if "unix_seconds" in numeric and "unix_millis" in numeric:
        millis = pc.greater_equal(pc.abs(x), 1e11)
        return pc.if_else(millis, pc.multiply(x, 1e3), pc.multiply(x, 1e6))
    return pc.multiply(x, 1e3 if first == "unix_millis" else 1e6)


# The shape most applications write (UTC, 'T' or space, optional fraction and Z), years 1000-9999.
_COMMON_ISO = (r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
               r"(\.\d{1,6})?Z?$")


def _common_iso_micros(s: pa.Array) -> pa.Array | None:
    """When every text has the common shape and a real date, Arrow's ISO 8601 parser reads them (far faster
    than the general reading, same instants; docs/performance.md); None otherwise."""
    shaped = pc.sum(pc.match_substring_regex(s, _COMMON_ISO)).as_py() or 0
    if shaped != len(s) - s.null_count:
        return None
    try:
        return pc.utf8_rtrim(s, "Z").cast(pa.timestamp("us")).cast(pa.int64())
    except pa.ArrowInvalid:  # a day the month does not have: the general reading names it
        return None


def _iso_micros(s: pa.Array, fails: _Failures) -> pa.Array:
    """ISO 8601 text → microseconds since the epoch (UTC; offsets applied), vectorised with numpy."""
    common = _common_iso_micros(s)
    if common is not None:
        return common
    groups = _groups(pc.extract_regex(s, _ISO))
    matched = pc.is_valid(groups["y"]).to_numpy(zero_copy_only=False)

    def num(name: str, default: int = 0) -> np.ndarray:
        return _group_int(groups[name], default).to_numpy(zero_copy_only=False)

    y, mo, d = num("y", 1970), num("mo", 1), num("d", 1)
    h, mi, sec, frac = num("h"), num("mi"), num("s"), _micros_fraction(groups["f"]).to_numpy(zero_copy_only=False)
    z = pc.replace_substring(pc.utf8_upper(groups["z"]), ":", "")
    z_sign = np.where(pc.fill_null(pc.starts_with(z, "-"), False).to_numpy(zero_copy_only=False), -1, 1)
    z_h = _group_int(pc.utf8_slice_codeunits(z, 1, 3), 0).to_numpy(zero_copy_only=False)
    z_m = _group_int(pc.utf8_slice_codeunits(z, 3, 5), 0).to_numpy(zero_copy_only=False)

    zero = matched & (y == 0) & (mo == 0) & (d == 0)
    month_ok = (mo >= 1) & (mo <= 12)
    year = (np.clip(y, 1, 9999) - 1970).astype("datetime64[Y]")
    month_start = year.astype("datetime64[M]") + (np.clip(mo, 1, 12) - 1)
    days_in_month = ((month_start + 1).astype("datetime64[D]") - month_start.astype("datetime64[D]")).astype(np.int64)
    date_ok = month_ok & (d >= 1) & (d <= days_in_month) & (y >= 1)
    time_ok = (h <= 23) & (mi <= 59) & (sec <= 59) & (z_h <= 23) & (z_m <= 59)
    fails.add(pa.array(zero), "zero date")
    fails.add(pa.array(matched & ~zero & ~date_ok), "invalid date")
    fails.add(pa.array(matched & date_ok & ~time_ok), "invalid time of day")
    days = (month_start.astype("datetime64[D]") - np.datetime64("1970-01-01", "D")).astype(np.int64) + d - 1
    micros = (days * 86400 + h * 3600 + mi * 60 + sec - z_sign * (z_h * 3600 + z_m * 60)) * 1_000_000 + frac
    return pa.array(micros, pa.int64(), mask=~(matched & date_ok & time_ok))


def _groups(extracted: pa.StructArray) -> dict[str, pa.Array]:
    """Regex groups by name, null where the text did not match."""
    return {f.name: a for f, a in zip(extracted.type, extracted.flatten())}


def _group_int(arr: pa.Array, default: int) -> pa.Array:
    """An optional group as int64: an empty (not participating) or null group gives `default`."""
    return pc.fill_null(pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr).cast(pa.int64()), default)


def _micros_fraction(f: pa.Array) -> pa.Array:
    """Fractional-second digits → microseconds (digits beyond the sixth are truncated: PostgreSQL keeps µs)."""
    return pc.utf8_rpad(pc.utf8_slice_codeunits(pc.fill_null(f, ""), 0, 6), 6, "0").cast(pa.int64())


def _to_timestamp(parts: _Parts, base: str, rules: CastOptions, fails: _Failures) -> pa.Array:
    iso, numbers = pa.nulls(parts.n, pa.int64()), [parts.i, parts.r]
    if _present(parts.b):
        s = pc.utf8_trim_whitespace(_text(_blob_fails(parts, fails, base), fails))
        if "iso8601" in rules.parse:
            iso = _iso_micros(s, fails)
        looks_iso = pc.match_substring_regex(s, r"^\d{4}-\d{2}-\d{2}")
        numeric_text = pc.and_(pc.match_substring_regex(s, _NUMBER), pc.invert(looks_iso))
        fails.add(pc.and_(pc.and_not(_valid(s), numeric_text), pc.is_null(iso)), "not a recognised date/time")
        numbers.append(pc.if_else(numeric_text, s, pa.scalar(None, pa.string())).cast(pa.float64()))
    x = _coalesce(pa.float64(), *numbers)
    fails.add(pc.invert(pc.fill_null(pc.is_finite(x), True)), "not a finite number")
    from_number = pc.round(_numeric_seconds(pc.if_else(pc.is_finite(x), x, pa.scalar(None, pa.float64())),
                                            rules.parse, fails))
    in_range = pc.and_(pc.greater_equal(from_number, float(_MIN_US)), pc.less(from_number, float(_MAX_US)))
    fails.add(pc.invert(in_range), "out of range (years 1-9999)")
    from_number = pc.if_else(in_range, from_number, pa.scalar(None, pa.float64())).cast(pa.int64())
    micros = pc.coalesce(iso, from_number)
    if base == "date":
        # Integer arithmetic: microseconds of years far from 1970 (0001, 9999) exceed float64's exact range.
        valid = pc.is_valid(micros).to_numpy(zero_copy_only=False)
        days, rest = np.divmod(pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), _US_PER_DAY)
        fails.add(pa.array(valid & (rest != 0)), "time part in a date column")
        return pa.array(days.astype(np.int32), mask=~valid | (rest != 0)).cast(pa.date32())
    return micros.cast(pa.timestamp("us", "UTC") if base == "timestamptz" else pa.timestamp("us"))


def _to_time(parts: _Parts, fails: _Failures) -> pa.Array:
    fails.add(pc.or_(_valid(parts.i), _valid(parts.r)), "number in time column")
    s = pc.utf8_trim_whitespace(_text(_blob_fails(parts, fails, "time"), fails))
    g = _groups(pc.extract_regex(s, _TIME))
    matched = pc.is_valid(g["h"])
    fails.add(pc.and_(_valid(s), pc.invert(matched)), "not a time of day (HH:MM[:SS[.ffffff]])")
    h, mi, sec, frac = _group_int(g["h"], 0), _group_int(g["mi"], 0), _group_int(g["s"], 0), _micros_fraction(g["f"])
    ok = pc.and_(pc.and_(pc.less_equal(h, 23), pc.less_equal(mi, 59)), pc.less_equal(sec, 59))
    fails.add(pc.and_(matched, pc.invert(ok)), "invalid time of day")
    micros = pc.add(pc.multiply(pc.add(pc.add(pc.multiply(h, 3600), pc.multiply(mi, 60)), sec), 1_000_000), frac)
    return pc.if_else(pc.and_(ok, matched), micros, pa.scalar(None, pa.int64())).cast(pa.time64("us"))


def _real_text(r: pa.Array) -> pa.Array:
    """REAL → shortest round-trip text, keeping a '.0' on whole numbers so it still reads as a REAL."""
    s = r.cast(pa.string())
    return pc.if_else(pc.match_substring_regex(s, r"[.en]"), s, pc.binary_join_element_wise(s, ".0", ""))


def _check_text(s: pa.Array, t: str, fails: _Failures) -> None:
    fails.add(pc.match_substring(s, "\x00"), "NUL character (PostgreSQL text cannot hold NUL)")
    m = _SIZED.match(t)
    if m:
        n = int(m.group(2))
        fails.add(pc.greater(pc.utf8_length(s), n), f"longer than {n} characters")


def _to_text(parts: _Parts, t: str, fails: _Failures) -> pa.Array:
    s = pc.coalesce(parts.i.cast(pa.string()), _real_text(parts.r), _text(parts.b, fails))
    _check_text(s, t, fails)
    return s


def _to_json(parts: _Parts, invalid_json: str, fails: _Failures) -> pa.Array:
    s = _text(parts.b, fails)
    fails.add(pc.invert(pc.fill_null(pc.is_finite(parts.r), True)), "NaN/Infinity is not valid JSON")
    numbers = pc.coalesce(parts.i.cast(pa.string()), _real_text(pc.if_else(pc.is_finite(parts.r), parts.r,
                                                                            pa.scalar(None, pa.float64()))))
    # Each distinct text is parsed once: telemetry readings repeat.
    encoded = s.dictionary_encode()
    texts = encoded.dictionary
    # orjson turns integers beyond 64 bits into floats: texts with a run of 19+ digits take the exact path.
    exact = pc.match_substring_regex(texts, r"\d{19}").to_pylist()
    results = [_json_text(v, invalid_json, fast=not slow) for v, slow in zip(texts.to_pylist(), exact)]
    values = pa.array([value for value, _ in results], pa.string()).take(encoded.indices)
    reasons = pa.array([reason for _, reason in results], pa.string()).take(encoded.indices)
    for reason in {r for _, r in results if r}:
        fails.add(pc.fill_null(pc.equal(reasons, reason), False), reason)
    return pc.coalesce(numbers, values)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"JSON number {text} is out of double range")
    return value


# Built once: constructing a decoder/encoder per value costs more than the parsing itself.
_DECODE = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _json_text(v: str, invalid_json: str, fast: bool = False) -> tuple[str | None, str | None]:
    """Compact JSON text of `v`, or a failure reason (numbers are read as Python int/float).

    `fast` tries orjson first (faster, docs/performance.md; same values, floats possibly spelled 1e16 for 1e+16); whatever
    orjson rejects (invalid, non-finite, too deep, lone surrogates) gets the exact path's answer.
    """
    if len(v) > _JSONB_MAX_BYTES:
        return None, "JSON document larger than 255 MB (jsonb limit)"
    text = None
    if fast:
        try:
            text = orjson.dumps(orjson.loads(v)).decode()
        except (ValueError, TypeError):
            pass
    try:
        text = text or _ENCODE(_DECODE(v))
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError:
        if invalid_json != "keep_string":
            return None, "invalid JSON"
        text = _ENCODE(v)
    if "u0000" in text and _JSON_NUL.search(text):
        return None, "JSON contains \\u0000 (PostgreSQL jsonb cannot hold it)"
    return text, None


def _to_bytea(parts: _Parts, fails: _Failures) -> pa.Array:
    fails.add(pc.or_(_valid(parts.i), _valid(parts.r)), "number in bytea column")
    return parts.b


def _to_uuid(parts: _Parts, fails: _Failures) -> pa.Array:
    fails.add(pc.or_(_valid(parts.i), _valid(parts.r)), "number in uuid column")
    blob16 = pc.and_(parts.blob, pc.equal(pc.binary_length(parts.b), 16))
    text_b = pc.if_else(blob16, pa.scalar(None, pa.binary()), parts.b)
    hexed = pc.utf8_lower(pc.replace_substring_regex(pc.utf8_trim_whitespace(_text(text_b, fails)), r"[{}-]", ""))
    ok = pc.match_substring_regex(hexed, _UUID_HEX)
    fails.add(pc.invert(ok), "not a UUID")
    blob_hex = pa.array([v.hex() if v is not None else None for v in
                         pc.if_else(blob16, parts.b, pa.scalar(None, pa.binary())).to_pylist()], pa.string())
    h = pc.coalesce(pc.if_else(ok, hexed, pa.scalar(None, pa.string())), blob_hex)
    pieces = [pc.utf8_slice_codeunits(h, a, b) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*pieces, "-")
