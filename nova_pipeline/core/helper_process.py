"""A helper process: a one-worker process pool whose worker imports its module at once and never outlives the
process that started it."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait


def helper_pool(module: str) -> ProcessPoolExecutor:
    """A one-worker pool, its worker spawned now, importing `module` before its first task, and exiting as soon
    as this process ends, however it ends (a process ending by os._exit or a signal shuts no pool down)."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_prepare,
                               initargs=(module,))
    pool.submit(int)  # start the process, and its import, now rather than at the first task
    return pool


def _prepare(module: str) -> None:
    parent = multiprocessing.parent_process()
    threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(0)), daemon=True).start()
    importlib.import_module(module)
