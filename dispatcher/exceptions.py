"""Errors of the dispatcher: bad manifests, and what a delivery attempt can say went wrong.

A failed attempt says whose problem it is, because that decides what happens next:

* ``RetryableDeliveryError``: this attempt failed, another may work (timeouts, 5xx, resets).
  Counted against the event's retries; when they run out the user is parked.
* ``ThrottledError``: the destination asked everyone to slow down (429/503 with
  ``Retry-After``). The whole destination pauses for that long; nobody's attempts are spent.
* ``DestinationError``: the destination as a whole is unusable (401, 403, 404, 410, a
  misconfiguration of ours). Not the event's fault: the destination's breaker opens and the
  event waits in place, its attempts untouched.
* ``PermanentDeliveryError``: the receiver refuses this one event for good (400, 422):
  dead-lettered at once, and the user's next event follows.
"""

from __future__ import annotations

from eventlog.exceptions import EventDeliveryError

__all__ = [
    "AttemptTimeout",
    "DeliveryError",
    "DestinationError",
    "DestinationMisconfigured",
    "DispatcherError",
    "ManifestError",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "ThrottledError",
]


class DispatcherError(EventDeliveryError):
    """Root of the dispatcher's errors."""


class ManifestError(DispatcherError):
    """A manifest is invalid. The message names the file, the destination and the field."""


class DeliveryError(DispatcherError):
    """A delivery attempt failed."""


class RetryableDeliveryError(DeliveryError):
    """Worth trying again (timeouts, connection errors, redirects, 408, 5xx).

    ``retry_after`` is the destination's own wish (e.g. HTTP ``Retry-After``), in seconds; the
    retry policy waits at least that long.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AttemptTimeout(RetryableDeliveryError):
    """The destination did not answer within the attempt's timeout."""


class ThrottledError(RetryableDeliveryError):
    """The destination asked to be left alone for ``retry_after`` seconds (429/503 with
    ``Retry-After``): the whole destination pauses, and the attempt is not counted."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after: float = retry_after


class DestinationError(DeliveryError):
    """The destination as a whole cannot take events (credentials, URL, configuration).

    Not a verdict on the event: the destination's breaker opens and the event keeps its place
    and its remaining attempts.
    """


class DestinationMisconfigured(DestinationError):
    """Building the request failed on our side (e.g. a header value the HTTP client refuses):
    every event would fail the same way, so it is the destination's configuration at fault."""


class PermanentDeliveryError(DeliveryError):
    """The receiver refuses this one event for good (e.g. HTTP 400, 422): no further attempts;
    it is dead-lettered and the user's later events go on."""
