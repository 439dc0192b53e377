"""Webhook destinations: ``POST`` the event as JSON to a URL.

2xx is success. Timeouts, connection errors, 408, 429 and 5xx are retried (``Retry-After``
honoured); any other status is permanent. One connection pool per destination.
"""

from __future__ import annotations

import email.utils
import time

import aiohttp
import msgspec
from opentelemetry import propagate, trace

from dispatcher.destinations.base import DestinationType
from dispatcher.exceptions import PermanentDeliveryError, RetryableDeliveryError
from eventlog.record import Event
from eventlog.semconv import HTTP_RESPONSE_STATUS
from eventlog.telemetry import tracing_enabled

__all__ = ["TYPE", "HttpDestination", "HttpOptions"]

RETRYABLE_STATUS = frozenset({408, 429})


class HttpOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Manifest keys of ``type: http``."""

    url: str
    """Where to ``POST`` each event (http or https)."""
    headers: dict[str, str] = {}
    """Extra request headers; write secrets as ``${VAR}`` so they come from the environment."""
    max_connections: int | None = None
    """Connections kept to the destination (bounds concurrent requests too); by default the
    destination's ``concurrency``, so it never caps it."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if self.max_connections is not None and self.max_connections < 1:
            # aiohttp reads 0 as "no limit"
            raise ValueError("max_connections must be at least 1")


class HttpPayload(msgspec.Struct, frozen=True):
    """The JSON body a destination receives."""

    id: str
    user_id: str
    payload: str
    received_at_ms: int


class HttpDestination:
    """POSTs events to one URL over a reused connection pool."""

    def __init__(self, name: str, options: HttpOptions, concurrency: int = 100) -> None:
        self.name = name
        self._url = options.url
        self._headers = {**options.headers, "Content-Type": "application/json"}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=options.max_connections or concurrency),
            timeout=aiohttp.ClientTimeout(total=None),  # the caller bounds each attempt
            raise_for_status=False,
        )
        self._encoder = msgspec.json.Encoder()
        self._traced = tracing_enabled()

    async def send(self, event: Event) -> None:
        body = self._encoder.encode(
            HttpPayload(event.id, event.user_id, event.payload, event.received_at_ms)
        )
        headers = self._headers
        if self._traced:
            headers = dict(headers)
            propagate.inject(headers)  # the destination can join the event's trace
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise RetryableDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if self._traced:
            trace.get_current_span().set_attribute(HTTP_RESPONSE_STATUS, status)
        if 200 <= status < 300:
            return
        if status in RETRYABLE_STATUS or status >= 500:
            raise RetryableDeliveryError(
                f"HTTP {status}", retry_after=parse_retry_after(retry_after)
            )
        raise PermanentDeliveryError(f"HTTP {status}")

    async def close(self) -> None:
        await self._session.close()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


TYPE = DestinationType(options=HttpOptions, create=HttpDestination)
