"""Work begun at once beside the caller, on a daemon thread (it never holds up the process's exit)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def begun(fn: Callable[..., T], *args, name: str) -> Future[T]:
    """`fn(*args)` started now on a daemon thread called `name`; its result or error through the future."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as e:
            future.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
