"""nova-pipeline: declarative, verified SQLite → PostgreSQL + MongoDB migrations on Dagster."""

import os

__version__ = "0.1.0"

# Arrow buffers from jemalloc, which Arrow sets up to hand freed memory back to the system within a second.
# It gave the lowest peak RSS at scale in the same time (docs/performance.md). Arrow reads this when it first
# allocates, so it is set before anything imports pyarrow; a build without jemalloc keeps its default.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
