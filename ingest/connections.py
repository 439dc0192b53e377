"""Bounds on what one HTTP connection may cost ingest, enforced where uvicorn reads the bytes.

uvicorn (httptools) bounds none of these by itself: a request's headers may be any size, a
connection that never sends a byte stays open, a client may send its headers or body at a byte
a second, and connections are accepted until the process runs out of file descriptors, after
which not even ``/healthz`` is answered. ``GuardedHttpProtocol`` adds:

- **header size**: request line and headers together at most ``max_header_bytes``, else 431;
  counted as the bytes arrive, so an oversized header is never buffered whole;
- **header timeout**: a request's line and headers must be complete ``header_timeout`` s after
  the connection opens (or its first byte arrives, on a kept-alive connection), else 408 (or
  a plain close if nothing came at all);
- **body timeout**: the body must be complete ``body_timeout`` s after its headers, else 408;
- **keep-alive timeout**: uvicorn's own, an idle kept-alive connection closes after
  ``keep_alive_timeout`` s;
- **a connection cap** that leaves health checks answerable: past ``max_connections``, a new
  connection closes the longest-idle one (idle: no request in progress, including one whose
  headers are still arriving); if every connection is in the middle of a request, the new one
  is served for ``/healthz`` and ``/readyz`` only (anything else: 503), up to
  ``HEALTH_RESERVE`` more; past those it is closed at once.

Each limit that bites is logged (a line per burst, with counts) and counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import resource
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import httptools
from opentelemetry import metrics
from opentelemetry.metrics import Observation
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ingest.bursts import BurstLog

__all__ = [
    "HEALTH_PATHS",
    "HEALTH_RESERVE",
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedHttpProtocol",
    "accept_burst",
    "fit_to_file_limit",
    "protocol_factory",
]

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
"""What a connection over the cap is still served for: a load balancer's probes."""
HEALTH_RESERVE = 32
"""Connections accepted past ``max_connections`` for health checks when none is idle."""
_OTHER_FILES = 128
"""File descriptors kept for everything but client connections: Kafka's sockets, logs, the
event loop's own."""
_MIN_BACKLOG = 16
"""The shortest listen backlog ingest lowers it to when file descriptors are scarce."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may cost (``IngestSettings`` gives them)."""

    max_header_bytes: int = 16 * 1024
    """Most bytes of request line and headers of one request."""
    header_timeout: float = 10.0
    """Seconds from a connection's opening (or a kept-alive request's first byte) until its
    headers must be complete."""
    body_timeout: float = 30.0
    """Seconds from a request's headers until its body must be complete."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle kept-alive connection stays open."""
    max_connections: int = 1000
    """Connections open at once before the longest-idle one is closed for a new one."""
    backlog: int = 2048
    """The listen backlog: connections the kernel queues until ingest accepts them (uvicorn's
    default). Also about how many the event loop accepts in one go (``accept_burst``)."""


def accept_burst(backlog: int) -> int:
    """File descriptors connections can take beyond ``max_connections`` for a moment.

    asyncio's loop accepts up to ``backlog`` connections in one go; they are made (and evict
    as many idle ones) a turn later, and the evicted sockets are closed a turn after that,
    while the next ``backlog`` are being accepted: two backlogs' worth (measured with a
    burst of connections under a small ``RLIMIT_NOFILE``). Beyond the descriptors, asyncio
    logs ``Too many open files`` and stops accepting for a second, health checks included.
    """
    return 2 * backlog


def fit_to_file_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` within what the process's file descriptors allow.

    Raises the soft ``RLIMIT_NOFILE`` towards the hard one if it must (worker processes
    inherit it); if even that is too low, lowers the listen backlog and ``max_connections``
    to fit, and says so.
    """
    needed = limits.max_connections + HEALTH_RESERVE + accept_burst(limits.backlog) + _OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    spare = soft - HEALTH_RESERVE - _OTHER_FILES
    # A quarter of what is left for the bursts (two backlogs), half for connections held: a
    # short backlog only makes a burst's clients wait in the kernel's queue a moment longer.
    backlog = min(limits.backlog, max(_MIN_BACKLOG, spare // 4))
    fitted = max(1, min(limits.max_connections, spare - accept_burst(backlog)))
    log.warning(
        "max_connections lowered to fit the file descriptor limit max_connections=%d "
        "asked=%d backlog=%d nofile=%d",
        fitted,
        limits.max_connections,
        backlog,
        soft,
    )
    return replace(limits, max_connections=fitted, backlog=backlog)


class ConnectionGuard:
    """What the connections of one server share: the limits, and the logs and counts of the
    limits biting. Built before the server starts (and copied into each worker process)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.closed: Counter[str] = Counter()
        self._logs: dict[str, BurstLog] = {}
        self._metered = False
        self._open = 0

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the limits only; logs and metrics start afresh in each.
        return {"limits": self.limits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limits"])  # type: ignore[misc]

    def opened(self, open_now: int) -> None:
        self._open = open_now
        if not self._metered:
            self._metered = True
            meter = metrics.get_meter("ingest")
            meter.create_observable_gauge(
                "ingest_connections_open", unit="{connection}",
                callbacks=[lambda _: [Observation(self._open)]],
                description="HTTP connections open right now.",
            )  # fmt: skip
            meter.create_observable_counter(
                "ingest_connections_limited", unit="{connection}",
                callbacks=[lambda _: self._closed_by_reason()],
                description="Connections a limit closed or answered early, by reason.",
            )  # fmt: skip

    def _closed_by_reason(self) -> list[Observation]:
        return [Observation(n, {"reason": r}) for r, n in list(self.closed.items())]

    def bit(self, reason: str, message: str, *args: object) -> None:
        """A limit bit one connection: count it, and log it (a line per burst)."""
        self.closed[reason] += 1
        burst = self._logs.get(reason)
        if burst is None:
            burst = self._logs[reason] = BurstLog(log, f"{message} reason={reason}")
        burst.hit(*args)


def protocol_factory(limits: ConnectionLimits) -> Any:
    """What to give uvicorn as ``http=``: ``GuardedHttpProtocol`` bound to ``limits``."""
    return functools.partial(GuardedHttpProtocol, guard=ConnectionGuard(limits))


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of this module."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._limits = guard.limits
        self.timeout_keep_alive = guard.limits.keep_alive_timeout  # type: ignore[assignment]
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = True
        self._bytes_in_headers = 0
        self._header_size = 0
        self._refused = False
        self._health_only = False
        self.idle_since: float | None = None
        """Since when no request has been in progress (``None`` while one is)."""

    # Connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self._limits
        others = len(self.connections) - 1
        self._guard.opened(others + 1)
        if others >= limits.max_connections and not self._evict_longest_idle():
            if others >= limits.max_connections + HEALTH_RESERVE:
                self._guard.bit(
                    "connection-cap", "too many connections; closed a new one max=%d",
                    limits.max_connections,
                )  # fmt: skip
                self._refused = True
                transport.close()
                return
            self._health_only = True
        self.idle_since = self.loop.time()
        self._arm(limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self._guard.opened(len(self.connections))

    def _evict_longest_idle(self) -> bool:
        # A connection already closing (evicted or refused) stays in ``connections`` until the
        # loop's next turn, and connections accepted in one go are all made in one turn:
        # picking it again would let each of them "make room" by closing the same one.
        idle = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpProtocol)
            and c is not self
            and c.idle_since is not None
            and not c.closing
        ]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.idle_since or 0.0)
        self._guard.bit(
            "connection-cap",
            "too many connections; closed the longest-idle one for a new one max=%d",
            self._limits.max_connections,
        )
        victim.close_now()
        return True

    @property
    def closing(self) -> bool:
        """Whether this connection is on its way out (refused, evicted or answered and closed)."""
        return self._refused or self.transport.is_closing()

    def close_now(self) -> None:
        """Close this connection (it is idle: no request of it is in progress)."""
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    # Bytes and parser callbacks

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            self._bytes_in_headers += len(data)
        super().data_received(data)
        # Headers still incomplete after this many bytes: refuse before buffering more.
        if self._in_headers and self._bytes_in_headers > self._limits.max_header_bytes:
            self._headers_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_size = 0
        if self._timer is None:  # a kept-alive connection's next request
            self._arm(self._limits.header_timeout, self._headers_too_slow)

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._bytes_in_headers = 0
        if self._header_size > self._limits.max_header_bytes:
            self._headers_too_large()
            return
        if self._health_only and httptools.parse_url(self.url).path.decode() not in HEALTH_PATHS:
            self._guard.bit(
                "connection-cap", "too many connections busy; answered 503 max=%d",
                self._limits.max_connections,
            )  # fmt: skip
            self._answer_and_close(
                503,
                "unavailable",
                "Temporarily unavailable",
                "ingest has too many connections open; retry shortly",
                extra=b"retry-after: 1\r\n",
                reason="busy",
            )
            return
        self.idle_since = None
        self._disarm()
        self._arm(self._limits.body_timeout, self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._in_headers = True  # what arrives next is the next request's
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline:
            self.idle_since = self.loop.time()

    # Limits biting

    def _headers_too_large(self) -> None:
        self._guard.bit(
            "header-too-large", "request headers too large; answered 431 max_header_bytes=%d",
            self._limits.max_header_bytes,
        )  # fmt: skip
        self._answer_and_close(
            431,
            "headers-too-large",
            "Request header fields too large",
            f"the request line and headers are larger than {self._limits.max_header_bytes} bytes",
        )

    def _headers_too_slow(self) -> None:
        self._timer = None
        if self._refused or not self._in_headers:
            return
        timeout = self._limits.header_timeout
        if self._bytes_in_headers == 0 and self.cycle is None:
            self._guard.bit("idle", "connection sent nothing; closed header_timeout=%gs", timeout)
            self.close_now()
            return
        self._guard.bit("header-timeout", "headers too slow; answered 408 header_timeout=%gs",
                        timeout)  # fmt: skip
        self._answer_and_close(
            408,
            "request-timeout",
            "Request timeout",
            f"the request's headers did not arrive within {timeout:g}s",
        )

    def _body_too_slow(self) -> None:
        self._timer = None
        if self._refused or self.cycle is None or not self.cycle.more_body:
            return
        timeout = self._limits.body_timeout
        self._guard.bit("body-timeout", "body too slow; answered 408 body_timeout=%gs", timeout)
        if self.cycle.response_started:
            self.close_now()
            return
        # The handler still waits for the body; closing tells it the client went away, so
        # it answers nobody, and this 408 is the answer the client gets.
        self._answer_and_close(
            408,
            "request-timeout",
            "Request timeout",
            f"the request's body did not arrive within {timeout:g}s",
        )

    def _answer_and_close(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        extra: bytes = b"",
        reason: str | None = None,
    ) -> None:
        problem: dict[str, Any] = {
            "type": f"urn:event-delivery:problem:{kind}",
            "title": title,
            "status": status,
            "detail": detail,
        }
        if reason is not None:
            problem["reason"] = reason
        body = json.dumps(problem).encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/problem+json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    extra,
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.close_now()

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
