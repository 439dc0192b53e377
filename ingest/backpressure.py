"""A bound on event requests handled at once, with a bounded wait for a free slot.

The bound is what keeps memory finite: each admitted request holds at most one body, and the
producer queue is sized from it (``IngestSettings.producer_overrides``). A request that finds
no slot within the wait is told to come back later instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry import metrics
from opentelemetry.metrics import Observation

from ingest.bursts import BurstLog
from ingest.exceptions import Unavailable

__all__ = ["RequestSlots"]

log = logging.getLogger(__name__)


class RequestSlots:
    """``max_concurrent`` slots; ``hold()`` waits at most ``wait`` seconds for one."""

    def __init__(
        self, *, max_concurrent: int, wait: float, retry_after: int, log_interval: float = 10.0
    ) -> None:
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._max = max_concurrent
        self._wait = wait
        self._retry_after = retry_after
        self._in_use = 0
        self._waiting = 0
        # A saturated ingest refuses thousands of requests a second: a line per burst, with
        # the count, says so without flooding the log.
        self._refusals = BurstLog(
            log,
            "no free request slot; answering 503 busy max_concurrent_requests=%d wait=%gs",
            interval=log_interval,
        )
        meter = metrics.get_meter("ingest")
        meter.create_observable_gauge(
            "ingest_request_slots_in_use", unit="{request}",
            callbacks=[lambda _: [Observation(self._in_use)]],
            description="Event requests holding a slot (parsing and producing) right now.",
        )  # fmt: skip
        meter.create_observable_gauge(
            "ingest_request_slots_waiting", unit="{request}",
            callbacks=[lambda _: [Observation(self._waiting)]],
            description="Event requests waiting for a free slot right now.",
        )  # fmt: skip

    @property
    def in_use(self) -> int:
        """Slots held right now."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot right now."""
        return self._waiting

    def hold(self) -> RequestSlots:
        """``async with slots.hold():`` holds a slot for the body of the block, or raises
        ``Unavailable`` if none frees up within the wait."""
        return self  # no per-request state, so no per-request object on the hot path

    async def __aenter__(self) -> None:
        if self._semaphore.locked():
            self._waiting += 1
            try:
                async with asyncio.timeout(self._wait):
                    await self._semaphore.acquire()
            except TimeoutError:
                self._refusals.hit(self._max, self._wait)
                raise Unavailable(
                    f"ingest is handling {self._max} requests already; retry shortly",
                    reason="busy",
                    retry_after=self._retry_after,
                ) from None
            finally:
                self._waiting -= 1
        else:
            await self._semaphore.acquire()  # free: returns without suspending
        self._in_use += 1

    async def __aexit__(self, *_: object) -> None:
        self._in_use -= 1
        self._semaphore.release()
