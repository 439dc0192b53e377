"""What an HTTP answer means for delivery, following Standard Webhooks, as pure code.

Only 2xx is success. Every other status is looked up in a destination's three lists, in this
order, the first that holds it deciding:

1. ``destination_status`` (default 401, 403, 404, 410): the destination as a whole is unusable
   (credentials, URL); ``DestinationError``, so its breaker opens and the event keeps its place.
2. ``retryable_status`` (default 300-399, 408, 429, 500-599): try again;
   ``RetryableDeliveryError``. A 429 or 503 carrying a ``Retry-After`` is the destination asking
   everyone to slow down: ``ThrottledError``, which pauses the destination without spending the
   event's attempts. Redirects are retried, never followed.
3. ``permanent_status`` (default 400-499): this one event is refused for good;
   ``PermanentDeliveryError``, dead-lettered at once.

A status in none of them is retried: a code nobody expected is no reason to drop an event.
Lists are written as status codes and inclusive ranges: ``[408, 429, "500-599"]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dispatcher.exceptions import (
    DeliveryError,
    DestinationError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ThrottledError,
)

__all__ = [
    "DEFAULT_DESTINATION_STATUS",
    "DEFAULT_PERMANENT_STATUS",
    "DEFAULT_RETRYABLE_STATUS",
    "StatusEntry",
    "StatusRules",
    "classify_status",
    "status_codes",
]

StatusEntry = int | str
"""One item of a status list: a code (``429``) or an inclusive range (``"500-599"``)."""

DEFAULT_DESTINATION_STATUS: tuple[StatusEntry, ...] = (401, 403, 404, 410)
DEFAULT_RETRYABLE_STATUS: tuple[StatusEntry, ...] = ("300-399", 408, 429, "500-599")
DEFAULT_PERMANENT_STATUS: tuple[StatusEntry, ...] = ("400-499",)
THROTTLING_STATUS = frozenset({429, 503})
"""Retryable statuses that, with a ``Retry-After``, throttle the whole destination."""

_RANGE = re.compile(r"([0-9]{3})-([0-9]{3})", re.ASCII)
_LOWEST, _HIGHEST = 100, 599


def status_codes(entries: Iterable[StatusEntry], field: str) -> frozenset[int]:
    """The codes ``entries`` name; ``ValueError`` starting with ``field`` for a bad entry."""
    codes: set[int] = set()
    for entry in entries:
        if isinstance(entry, bool):
            raise ValueError(f"{field} lists {entry!r}; write a status code or a range '500-599'")
        if isinstance(entry, int):
            low = high = entry
        elif match := _RANGE.fullmatch(entry):
            low, high = int(match[1]), int(match[2])
            if low > high:
                raise ValueError(f"{field} lists the range {entry!r}, which runs backwards")
        else:
            raise ValueError(f"{field} lists {entry!r}; write a status code or a range '500-599'")
        if low < _LOWEST or high > _HIGHEST:
            raise ValueError(f"{field} lists {entry!r}; status codes run from 100 to 599")
        if low <= 299 and high >= 200:
            raise ValueError(f"{field} lists {entry!r}; 2xx always means delivered")
        codes.update(range(low, high + 1))
    return frozenset(codes)


@dataclass(frozen=True, slots=True)
class StatusRules:
    """A destination's three status lists, as sets of codes."""

    destination: frozenset[int] = status_codes(DEFAULT_DESTINATION_STATUS, "destination_status")
    retryable: frozenset[int] = status_codes(DEFAULT_RETRYABLE_STATUS, "retryable_status")
    permanent: frozenset[int] = status_codes(DEFAULT_PERMANENT_STATUS, "permanent_status")


def classify_status(
    status: int, *, retry_after: float | None, rules: StatusRules
) -> DeliveryError | None:
    """``None`` for success, else the error an answer of ``status`` means for the event.

    ``retry_after``: seconds from the answer's ``Retry-After`` header, if it had a valid one.
    """
    if 200 <= status <= 299:
        return None
    message = f"HTTP {status}"
    if status in rules.destination:
        return DestinationError(message)
    if status in rules.retryable or status not in rules.permanent:
        if status in THROTTLING_STATUS and retry_after is not None:
            return ThrottledError(f"{message} (throttled)", retry_after=retry_after)
        return RetryableDeliveryError(message, retry_after=retry_after)
    return PermanentDeliveryError(message)
