"""Errors of the dispatcher: bad manifests, and what a delivery attempt can say went wrong."""

from __future__ import annotations

from eventlog.exceptions import EventDeliveryError

__all__ = [
    "AttemptTimeout",
    "DeliveryError",
    "DispatcherError",
    "ManifestError",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
]


class DispatcherError(EventDeliveryError):
    """Root of the dispatcher's errors."""


class ManifestError(DispatcherError):
    """A manifest is invalid. The message names the file, the destination and the field."""


class DeliveryError(DispatcherError):
    """A delivery attempt failed."""


class RetryableDeliveryError(DeliveryError):
    """Worth trying again (timeouts, connection errors, 408, 429, 5xx).

    ``retry_after`` is the destination's own wish (e.g. HTTP ``Retry-After``), in seconds; the
    retry policy waits at least that long.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AttemptTimeout(RetryableDeliveryError):
    """The destination did not answer within the attempt's timeout."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help (e.g. HTTP 4xx other than 408/429): no further attempts."""
