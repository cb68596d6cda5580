"""Source facts computed in a worker process, beside the steps that follow a table's transform.

A table's source facts (canonical texts, row hashes, aggregates: source_facts) cost about as much CPU as its
transform, nearly all of it Python holding the GIL. In the migrating process they kept the other core idle
after each transform; in a worker of their own they run beside the next tables (docs/performance.md).
`start` spawns this process's worker (the snapshot step calls it); `submit` hands it a transformed table,
whose facts it stores in the staging area's facts store, where the table's checks read them.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from nova_pipeline.core.helper_process import helper_pool
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.validate.source_facts import cached_source_facts


def start() -> None:
    """Spawn this process's facts worker now (it imports Arrow and NumPy beside the snapshot)."""
    _started_worker()


def submit(spec: Spec, table: str, staging: Staging) -> Future | None:
    """`table`'s facts begun in this process's worker, stored in the staging area's facts store when done; None
    when no worker was started here (a step process of its own computes them itself) or the worker is gone."""
    if not _started_worker.cache_info().currsize:
        return None
    try:
        return _started_worker().submit(_store_facts, spec, table, staging)
    except (BrokenProcessPool, RuntimeError):  # the worker died, or the interpreter is shutting down
        return None


def _store_facts(spec: Spec, table: str, staging: Staging) -> None:
    cached_source_facts(spec, table, staging)


@functools.cache  # one worker per process: a helper process, not run state
def _started_worker() -> ProcessPoolExecutor:
    return helper_pool(__name__)
