"""A bounded hand-off of Arrow batches from one pipeline stage's thread to the next one's.

The producer sends a header (the batches' schema), then batches, then either
the end or its failure; the consumer iterates. A consumer that stops early
(it failed) lets the producer finish its own work: later batches are dropped,
so an export or a transform completes its files even when the load behind it
failed, as when the phases run one after another. Time either side spends
waiting on the other is counted, so each stage can report its own busy time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

_END = object()


class UpstreamFailed(RuntimeError):
    """The stage feeding this one failed; its own error is the one to report."""


class Handoff:
    """Batches from a producer thread to a consumer thread, at most `depth` waiting (memory: depth batches; one
    waiting kept the phases as busy as two, with less memory: docs/performance.md)."""

    def __init__(self, depth: int = 1):
        self._queue: queue.Queue = queue.Queue(depth)
        self._abandoned = threading.Event()
        self.producer_waited = self.consumer_waited = 0.0
        self.header: Any = None
        self._header_set = threading.Event()

    def start(self, header: Any) -> None:
        """Producer: what every batch will look like (the consumer's `header` waits for it)."""
        self.header = header
        self._header_set.set()

    def put(self, batch) -> None:
        """Producer: hand one batch on (dropped when the consumer has stopped)."""
        while not self._abandoned.is_set():
            started = time.perf_counter()
            try:
                self._queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                pass
            finally:
                self.producer_waited += time.perf_counter() - started

    def end(self, error: BaseException | None = None) -> None:
        """Producer: no more batches; with `error`, the consumer raises UpstreamFailed."""
        self._header_set.set()
        self.put(UpstreamFailed(str(error)) if error is not None else _END)

    def abandon(self) -> None:
        """Consumer: stop taking batches; the producer goes on without handing them over."""
        self._abandoned.set()
        while True:  # free the queued batches' memory and any put that is waiting
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def wait_header(self) -> Any:
        """Consumer: the producer's header (None when it failed before sending one)."""
        self._header_set.wait()
        return self.header

    def __iter__(self) -> Iterator:
        """Consumer: the batches, until the producer's end (UpstreamFailed when it failed)."""
        while True:
            started = time.perf_counter()
            item = self._queue.get()
            self.consumer_waited += time.perf_counter() - started
            if item is _END:
                return
            if isinstance(item, UpstreamFailed):
                raise item
            yield item
