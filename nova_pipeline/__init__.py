"""nova-pipeline: declarative, verified SQLite → PostgreSQL + MongoDB migrations on Dagster."""

import os

__version__ = "0.1.0"

# Arrow buffers from the C library's allocator, which hands large freed blocks back to the system; the
# bundled mimalloc pool kept them: the Nova sample's migration peaked at 640 MB that way, 565 MB this way,
# in the same time. Read by Arrow when it first allocates, so set before anything imports pyarrow.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
