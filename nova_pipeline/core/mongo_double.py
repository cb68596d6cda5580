"""The in-process MongoDB double (mongomock) that `mongomock://NAME` URIs select: the demo's and unit tests' target.

It stands in for a server, so it holds the documents written to it for as long as its process lives: one
client per name and process, kept here. That is target data, not run state, and it is why a run whose
MongoDB is the double runs every step in one process (orchestration/executors.py); a real server has no
such limit.
"""

from __future__ import annotations

import functools

_CLIENTS: dict[str, object] = {}


def client(uri: str):
    """The process's double of that `mongomock://` URI (created empty on first use)."""
    import mongomock

    _accept_unused_bulk_sort()
    return _CLIENTS.setdefault(uri, mongomock.MongoClient(tz_aware=True))


def _accept_unused_bulk_sort() -> None:
    """mongomock 4.3 rejects the `sort` keyword pymongo ≥ 4.11 passes to bulk builders; accept it when unused."""
    from mongomock import collection as mc

    builder = mc.BulkOperationBuilder
    if getattr(builder, "_nova_sort_shim", False):
        return

    def drop_sort(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, sort=None, **kwargs):
            if sort is not None:
                raise NotImplementedError("sort= is not supported by mongomock")
            return fn(self, *args, **kwargs)

        return wrapper

    builder.add_update = drop_sort(builder.add_update)
    builder.add_replace = drop_sort(builder.add_replace)
    builder._nova_sort_shim = True
