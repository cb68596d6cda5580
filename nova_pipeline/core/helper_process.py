"""A helper process: a one-worker process pool whose worker imports its module at once and never outlives the
process that started it."""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait

_POOLS: list[ProcessPoolExecutor] = []  # this process's helper pools (processes, not run state), for stop_helpers


def helper_pool(module: str) -> ProcessPoolExecutor:
    """A one-worker pool, its worker spawned now, importing `module` before its first task, and exiting as soon
    as this process ends, however it ends (a process ending by os._exit or a signal shuts no pool down)."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_prepare,
                               initargs=(module,))
    pool.submit(int)  # start the process, and its import, now rather than at the first task
    _POOLS.append(pool)
    return pool


def stop_helpers() -> None:
    """End this process's helper pools, each once its running task is done (queued ones are dropped): a
    process ending on purpose then leaves no pool thread behind, and its workers' CPU is counted as its own."""
    while _POOLS:
        _POOLS.pop().shutdown(wait=True, cancel_futures=True)


def _prepare(module: str) -> None:
    parent = multiprocessing.parent_process()
    threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(0)), daemon=True).start()
    atexit.register(os._exit, 0)  # shut down: end without tearing down the modules (its results are sent)
    importlib.import_module(module)
