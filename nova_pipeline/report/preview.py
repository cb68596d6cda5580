"""A Markdown preview of a staged table's first rows, safe to show in the UI and reports.

Secrets never leave the staging area through a preview: a column whose name
suggests a secret is shown as `***`, and so is a key inside a JSON value whose
name does. A row flagged secret by a boolean column (`is_secret` in a config
table) has all its text values masked except the first column, which
identifies the row. BLOB/bytea values show as `<N bytes>`; long text is cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from nova_pipeline.core.staging import Staging

MASK = "***"
SECRET_NAME = re.compile(r"password|passwd|secret|token|api_?key|private_?key|credential|hash|salt", re.IGNORECASE)
BINARY_TYPES = ("bytea", "blob")
INTERNAL_PREFIX = "_nova_"  # bookkeeping columns (source rowid), not data


def is_secret_name(name: str) -> bool:
    """True when a column or field name suggests it holds a secret."""
    return bool(SECRET_NAME.search(name))


def preview_markdown(staging: Staging, kind: str, table: str, columns_types: Mapping[str, str] | None = None,
                     n: int = 5, max_chars: int = 40) -> str:
    """The first `n` rows of a table's Parquet files of `kind` (raw/clean/quarantine) as a Markdown table.

    `columns_types` maps column names to declared or target types; `bytea`/`blob`
    columns are elided like Arrow binary columns. Only the first batch is read.
    """
    files = staging.files(kind, table)
    if not files:
        return f"_no {kind} Parquet for `{table}`_"
    with staging.parquet_file(files[0]) as pf:
        batch = next(pf.iter_batches(batch_size=n), None)
        schema = pf.schema_arrow
    if batch is None or batch.num_rows == 0:
        return f"_`{table}` has no {kind} rows_"
    types = {k: v.lower() for k, v in (columns_types or {}).items()}
    binary = {f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
              or pa.types.is_fixed_size_binary(f.type) or types.get(f.name, "").startswith(BINARY_TYPES)}
    flags = [f.name for f in schema if pa.types.is_boolean(f.type) and is_secret_name(f.name)]
    names = [c for c in schema.names if not c.startswith(INTERNAL_PREFIX)]
    lines = ["| " + " | ".join(_escape(c) for c in names) + " |", "|" + "---|" * len(names)]
    for row in batch.to_pylist():
        masked = _masked_columns(row, names, flags)
        cells = [_cell(c, row[c], c in binary, c in masked, max_chars) for c in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _masked_columns(row: dict[str, Any], names: list[str], flags: list[str]) -> set[str]:
    """Columns of this row masked by its content: a secret-flagged row, or a quarantined secret value."""
    if any(row.get(c) for c in flags):
        return {c for c in names[1:] if isinstance(row[c], (str, bytes))}
    if isinstance(row.get("column"), str) and is_secret_name(row["column"]) and "raw_value" in row:
        return {"raw_value"}  # quarantine rows carry the offending value of the named column
    return set()


def _cell(column: str, value: Any, binary: bool, masked: bool, max_chars: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # flags such as is_secret or has_password are not secrets themselves
        return str(value).lower()
    if masked or is_secret_name(column):
        return MASK
    if binary or isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, (datetime, date)):
        text = value.isoformat()
    elif isinstance(value, (dict, list)):
        text = json.dumps(_mask_nested(value), default=str, ensure_ascii=False, separators=(",", ":"))
    elif isinstance(value, str):
        text = _mask_json_text(value)
    else:
        text = str(value)
    return _escape(text if len(text) <= max_chars else text[: max_chars - 1] + "…")


def _mask_json_text(text: str) -> str:
    """JSON objects stored as text get their secret-named keys masked; other text is returned unchanged."""
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_mask_nested(parsed), ensure_ascii=False, separators=(",", ":"))


def _mask_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if is_secret_name(str(k)) and not isinstance(v, bool) else _mask_nested(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_nested(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
