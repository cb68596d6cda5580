"""Spec-declared column expectations (min/max, allowed values, regex), run by Great Expectations inside PostgreSQL.

Great Expectations is large (its import takes seconds and holds ~130-260 MB: pandas, SciPy, Altair). A
process that has not imported it runs the suites in a worker process of its own, started by `preload` when
the snapshot is taken: the worker imports GX on the other core while this process exports, and the
migrating process stays that much smaller. A process that has GX already (a multiprocess step, whose
forkserver preloads it) runs them itself.
"""

from __future__ import annotations

import functools
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from nova_pipeline.core.connections import tls_parameters
from nova_pipeline.core.helper_process import helper_pool
from nova_pipeline.core.identifiers import target_column
from nova_pipeline.core.spec import Expectation, Spec
from nova_pipeline.validate import canonical as cn
from nova_pipeline.core import results as r
from nova_pipeline.core.results import CheckResult, format_key

SAMPLE = 10


def sqlalchemy_url(conn: psycopg.Connection) -> str:
    """A SQLAlchemy (psycopg 3) URL for the server and database `conn` is connected to, unix sockets included,
    with the connection's TLS settings (sslmode, certificates)."""
    info = conn.info
    socket = info.host.startswith("/")
    query = {"host": info.host, "port": str(info.port)} if socket else {}
    return URL.create("postgresql+psycopg", username=info.user, password=info.password or None,
                      host=None if socket else info.host, port=None if socket else info.port, database=info.dbname,
                      query={**query, **tls_parameters(conn)}).render_as_string(hide_password=False)


def preload(spec: Spec) -> None:
    """When the spec declares expectations and this process has no Great Expectations, start the GX worker
    now, so that it imports GX beside the export; the first check waits only for what is left."""
    if any(c.expect is not None for _, t in spec.table_items() for c in t.columns.values()):
        _gx_worker()


def _gx_worker() -> ProcessPoolExecutor | None:
    """This process's GX worker, or None when GX is imported here already."""
    return None if "great_expectations" in sys.modules else _started_worker()


@functools.cache  # one worker per process: a helper process, not run state
def _started_worker() -> ProcessPoolExecutor:
    return helper_pool("great_expectations")


def _suite(expects: dict[str, Expectation]) -> list[Any]:
    import great_expectations.expectations as gxe

    out = []
    for col, e in expects.items():
        if e.min is not None or e.max is not None:
            out.append(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=e.min, max_value=e.max))
        if e.values is not None:
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=e.values))
        if e.regex is not None:
            out.append(gxe.ExpectColumnValuesToMatchRegex(column=col, regex=e.regex))
    return out


def _describe(cfg) -> str:
    kw = cfg.kwargs
    if "value_set" in kw:
        return f"{kw['column']} in {list(kw['value_set'])}"
    if "regex" in kw:
        return f"{kw['column']} matches {kw['regex']!r}"
    return f"{kw['column']} between {kw.get('min_value')} and {kw.get('max_value')}"


def check_expectations(conn: psycopg.Connection, spec: Spec, table: str, schema: str, relname: str,
                       url: str | None = None) -> CheckResult:
    """Run the table's ColumnSpec.expect rules with GX on a SQL datasource (in the GX worker when this process
    has no GX); a failure is a WARN with counts and keys."""
    ts = spec.tables[table]
    expects = {target_column(ts, s): c.expect for s, c in ts.columns.items() if c.expect is not None}
    if not expects:
        return CheckResult(table, r.EXPECTATIONS, True, "no expectations declared", severity="WARN")
    url = url or sqlalchemy_url(conn)
    worker = _gx_worker()
    if worker is None:
        return _run_suite(url, spec, table, schema, relname, expects)
    return worker.submit(_run_suite, url, spec, table, schema, relname, expects).result()


def _run_suite(url: str, spec: Spec, table: str, schema: str, relname: str,
               expects: dict[str, Expectation]) -> CheckResult:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    with warnings.catch_warnings():  # "use PostgresDatasource": its URL check rejects unix-socket URLs
        warnings.simplefilter("ignore")
        ds = ctx.data_sources.add_sql(name="nova", connection_string=url)
    batch = ds.add_table_asset(name=table, table_name=relname, schema_name=schema).add_batch_definition_whole_table("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{table}_expectations", expectations=_suite(expects)))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{table}_validation", data=batch, suite=suite))
    pk = cn.primary_key(spec, table)
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE}
    if pk:
        fmt["unexpected_index_column_names"] = pk
    res = vd.run(result_format=fmt)
    failed, keys = [], []
    for er in res.results:
        if er.success:
            continue
        n = er.result.get("unexpected_count", 0)
        sample = [dict(zip(pk, k.values())) if isinstance(k, dict) else k
                  for k in (er.result.get("partial_unexpected_index_list") or [])][:SAMPLE]
        keys += sample
        where = f" ({'; '.join(format_key(k) for k in sample[:5] if isinstance(k, dict))})" if sample else ""
        failed.append(f"{_describe(er.expectation_config)}: {n} unexpected{where}")
    meta = {"evaluated": len(res.results), "failed": len(failed)}
    if not failed:
        return CheckResult(table, r.EXPECTATIONS, True, f"{len(res.results)} expectation(s) met", severity="WARN", metadata=meta)
    return CheckResult(table, r.EXPECTATIONS, False,
                       f"{r.EXPECTATIONS}: {len(failed)} of {len(res.results)} failed: " + "; ".join(failed),
                       keys[:SAMPLE], severity="WARN", metadata=meta)
