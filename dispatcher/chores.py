"""A worker's bookkeeping I/O beside its deliveries, and how it stops when that fails.

Park markers, replay results, recovery reads and partition placement run as tasks of their
own (``spawn``), so a delivery never waits for them. Any of them failing would leave some user
or partition unable to move while the destination still looked alive, so a failure stops the
destination (``stop``) with one ERROR line: its unfinished events stay uncommitted in Kafka
and a restart (or a supervisor) takes them up again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from dispatcher.durable import StoreRefused
from dispatcher.metrics import DeliveryMetrics

__all__ = ["Chores"]

log = logging.getLogger(__name__)


class Chores:
    """One worker's background tasks, and its stop signal."""

    def __init__(self, name: str, metrics: DeliveryMetrics) -> None:
        self._name = name
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._interruptible: set[asyncio.Task[None]] = set()
        self.halt = asyncio.Event()
        """Set when the destination must stop by itself."""
        self.stopped_by: str | None = None
        """Why it stopped by itself."""

    def spawn(self, work: Coroutine[Any, Any, object], *, interruptible: bool = False) -> None:
        """Run ``work`` beside the deliveries; its failure stops the destination.
        ``interruptible``: it only reads (a lookup), so shutdown need not wait for it."""
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if interruptible:
            self._interruptible.add(task)
            task.add_done_callback(self._interruptible.discard)

    def interrupt(self) -> None:
        """Cancel the interruptible chores (shutdown: what they would learn is not needed)."""
        for task in list(self._interruptible):
            task.cancel()

    async def settle(self, within: float) -> None:
        """Let the running chores finish, for at most ``within`` seconds."""
        if self._tasks and within > 0:
            await asyncio.wait(list(self._tasks), timeout=within)

    def stop(self, why: str) -> None:
        """Stop the destination: one ERROR line (the first reason), a count, the halt."""
        if self.stopped_by is None:
            self.stopped_by = why
            log.error(
                "destination stopped destination=%s error=%r; its unfinished events stay "
                "uncommitted in Kafka: fix the topic, then restart",
                self._name, why,
            )  # fmt: skip
            self._metrics.stopped(self._name)
        self.halt.set()

    async def _guarded(self, work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except StoreRefused as exc:
            self.stop(str(exc))
        except Exception as exc:
            log.error("bookkeeping failed destination=%s", self._name, exc_info=exc)
            self.stop(f"{type(exc).__name__}: {exc}")
