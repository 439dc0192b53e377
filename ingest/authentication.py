"""Who may write events: a Litestar guard checking each request's API key and its rate limit.

With a key file, an event request needs ``Authorization: Bearer <key>`` of a key in it (401
otherwise) and a token of that key's bucket (429 with ``Retry-After`` otherwise). Guards run
before the handler, so a refused request's body is never read and nothing reaches Kafka. The
key's name is left in the request's state for the handler (it becomes the record's
``ingest-key`` header). Without a key file every request is let through.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from ingest.exceptions import RateLimited, Unauthorized
from ingest.key_ring import KeyRing
from ingest.rate_limit import RateLimits
from ingest.stats import IngestStats

__all__ = ["KEY_STATE", "Authentication"]

KEY_STATE = "ingest_key"
"""The request state entry holding the authenticated key's name."""


class Authentication:
    """The guards of one app."""

    def __init__(self, ring: KeyRing | None, limits: RateLimits, stats: IngestStats) -> None:
        self.ring = ring
        self._limits = limits
        self._stats = stats
        self._known: object = None

    def _name(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        assert self.ring is not None
        keys = self.ring.current(time.monotonic())
        if keys is not self._known:  # reloaded: revoked keys' buckets go
            self._limits.forget_all_but(set(keys.names_by_digest.values()))
            self._known = keys
        name = keys.authenticate(connection.headers.get("authorization"))
        if name is None:
            given = "a key that is not valid" if "authorization" in connection.headers else "none"
            raise Unauthorized(
                f"this endpoint needs an API key (Authorization: Bearer <key>); given: {given}"
            )
        return name

    def events(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        """Guard of the event routes: a valid key with a token left."""
        if self.ring is None:
            return
        name = self._name(connection)
        retry_after = self._limits.retry_after(name, time.monotonic())
        if retry_after is not None:
            raise RateLimited(name, retry_after=retry_after)
        self._stats.by_key(name, "admitted")
        connection.state[KEY_STATE] = name

    def metrics(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        """Guard of ``/metrics`` when it is behind the keys: a valid key (no rate limit)."""
        if self.ring is not None:
            self._name(connection)
