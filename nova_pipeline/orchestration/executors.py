"""Which Dagster executor a run gets (without importing Dagster: the CLI decides before it loads it).

`in_process` runs every step one after another in the run's process;
`multiprocess` runs each step in its own process (Dagster's multiprocess
executor, started from a forkserver that preloads the heavy modules), so
independent steps use several cores and every step rebuilds its RunContext
from the spec file and what is stored under the staging area.
"""

from __future__ import annotations

import os

from nova_pipeline.core import connections
from nova_pipeline.core.spec import Spec

EXECUTORS = ("in_process", "multiprocess")
# Dagster's names of the executors that run every step in the run's process (the second: the Runner's runs).
IN_PROCESS_EXECUTORS = ("in_process", "execute_in_process_executor")
DEFAULT_EXECUTOR = "in_process"
ENV = "NOVA_EXECUTOR"
MOCK_NOTE = "mongomock targets run in_process: the in-process MongoDB double's data lives in one process"


def executor_name(spec: Spec, requested: str | None = None, mongo_uri: str | None = None) -> str:
    """`requested`, else NOVA_EXECUTOR, else the default; in_process whenever MongoDB is the in-process double
    (mongomock://) or the machine has one core. ValueError for an unknown name."""
    name = requested or os.environ.get(ENV) or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise ValueError(f"{ENV}={name!r}: use one of {', '.join(EXECUTORS)}")
    uri = connections.mongo_uri(spec, mongo_uri) if spec.table_items("mongo") else None
    if (uri and connections.is_mock_uri(uri)) or (os.cpu_count() or 1) < 2:
        return "in_process"
    return name
