"""Logging a condition that can happen thousands of times a second (requests refused, limits
hit) as a few lines with counts: the first occurrence of a burst at once, then one line per
interval with how many followed.

``BurstCounter`` is the pure decision (it is given the time); ``BurstLog`` applies it on the
event loop, with a timer so the last part of a burst is reported even if nothing follows.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["BurstCounter", "BurstLog"]


class BurstCounter:
    """Counts occurrences and says when to report them, at most once per ``interval`` s."""

    def __init__(self, *, interval: float) -> None:
        self._interval = interval
        self._pending = 0
        self._last_report: float | None = None

    @property
    def next_report_at(self) -> float | None:
        """When ``due`` will have something to report, if anything is pending."""
        if not self._pending or self._last_report is None:
            return None
        return self._last_report + self._interval

    def hit(self, now: float) -> int | None:
        """Count one occurrence at ``now``; the count to report now, or ``None`` to stay quiet."""
        self._pending += 1
        if self._last_report is not None and now - self._last_report < self._interval:
            return None
        return self._take(now)

    def due(self, now: float) -> int | None:
        """The count to report at ``now`` (an interval after the last report), if any."""
        at = self.next_report_at
        if at is None or now < at:
            return None
        return self._take(now)

    def _take(self, now: float) -> int:
        count, self._pending, self._last_report = self._pending, 0, now
        return count


class BurstLog:
    """One log line per burst of ``message`` and then one per ``interval`` s, each with a count.

    ``message`` is a %-format with its own fields; ``hit(*args)`` supplies them (the first
    occurrence's values appear in the line).
    """

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        interval: float = 10.0,
        level: int = logging.WARNING,
    ) -> None:
        self._logger = logger
        self._first = message + " count=%d (more are summed every %gs)"
        self._summary = message + " count=%d in the last %gs"
        self._interval = interval
        self._level = level
        self._counter = BurstCounter(interval=interval)
        self._timer: asyncio.TimerHandle | None = None
        self._args: tuple[object, ...] = ()

    def hit(self, *args: object) -> None:
        """One occurrence, now."""
        loop = asyncio.get_running_loop()
        count = self._counter.hit(loop.time())
        if count is not None:
            self._args = args
            self._logger.log(
                self._level,
                self._first,
                *args,
                count,
                self._interval,
            )
        elif self._timer is None and (at := self._counter.next_report_at) is not None:
            self._timer = loop.call_at(at, self._report_due)

    def _report_due(self) -> None:
        self._timer = None
        count = self._counter.due(asyncio.get_running_loop().time())
        if count:
            self._logger.log(
                self._level,
                self._summary,
                *self._args,
                count,
                self._interval,
            )
