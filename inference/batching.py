"""Micro-batching: concurrent calls in one process share one model call.

A worker's request threads each classify one text; run one at a time, each pays the whole
per-call cost of the graph. :class:`MicroBatcher` lets the first caller run at once (no added
latency when alone) while callers that arrive during that run queue up; when it finishes,
the next caller in the queue leads and runs everything queued as one batch. ``max_wait_s``
optionally holds a leader a few milliseconds for more callers (0 = never wait).

A batch that fails is retried one item at a time, so one unreadable input fails only its
own caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Texts per batched call (long texts split into windows; BATCH_WINDOWS bounds those).
DEFAULT_MAX_BATCH = 16
#: How long a leader waits for company before running (seconds); 0: run at once.
DEFAULT_MAX_WAIT_S = 0.0


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "lead", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False
        self.result: R | None = None
        self.error: BaseException | None = None


class MicroBatcher(Generic[T, R]):
    """Runs ``run_batch(items) -> results`` (same length, same order) for concurrent ``submit``s."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._cond = threading.Condition()
        self._pending: list[_Slot[T, R]] = []
        self._busy = False
        #: Sizes of the batches run so far (the benchmark reports how much batching happened).
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> R:
        """The result for ``item``, computed alone or in a batch with concurrent callers."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._pending.append(slot)
            lead = not self._busy
            self._busy = True
            self._cond.notify_all()
        if not lead:
            slot.done.wait()
            if not slot.lead:
                return self._outcome(slot)
        self._lead()
        return self._outcome(slot)

    def _lead(self) -> None:
        """Run one batch from the head of the queue, then hand the lead to the next waiter."""
        with self._cond:
            if self.max_wait_s and len(self._pending) < self.max_batch:
                deadline = time.monotonic() + self.max_wait_s
                self._cond.wait_for(
                    lambda: len(self._pending) >= self.max_batch, timeout=max(0.0, deadline - time.monotonic())
                )
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._run(batch)
        with self._cond:
            if self._pending:
                successor = self._pending[0]
                successor.lead = True
                successor.done.set()
            else:
                self._busy = False
        for slot in batch:
            slot.lead = False
            slot.done.set()

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = self._run_batch([slot.item for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch answered {len(results)} results for {len(batch)} items")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as error:
            if len(batch) == 1:
                batch[0].error = error
                return
            for slot in batch:  # find which item failed; the others still get their answer
                try:
                    slot.result = self._run_batch([slot.item])[0]
                except BaseException as single_error:
                    slot.error = single_error

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]
