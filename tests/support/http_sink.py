"""A webhook receiver on loopback that records every request and answers as its route says.

Routes (POST): ``/ok`` (204), ``/fail`` (500), ``/fail-first`` (500 for the first request of
each event id, then 204), ``/hang`` (answers after a minute), ``/latency/<ms>`` (204 after
``ms`` milliseconds), ``/status/<code>``, ``/fail-user/<user_id>`` (500 for that user's events,
204 for everyone else's), ``/switch/<name>`` (500 while the test has ``failing[name]`` hold
``"*"``, or the event's user; else 204), ``/refuse/<name>`` (the same with 422). It also
tracks requests in flight: the peak overall, and any user that ever had two at once (which
per-user ordering forbids).

Runs in a thread with its own event loop (a ``LoopbackServer``), so tests in any style can
use it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.loopback_server import LoopbackServer

__all__ = ["HttpSink", "Received"]


@dataclass(frozen=True, slots=True)
class Received:
    """One request the sink got."""

    route: str
    event_id: str
    user_id: str
    payload: str
    received_at_ms: int
    arrived: float
    """``time.monotonic()`` when the request arrived."""
    headers: dict[str, str]


class HttpSink(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._received: list[Received] = []
        self._accepted: list[Received] = []
        self._seen_ids: set[tuple[str, str]] = set()
        self._in_flight: dict[str, int] = {}
        self._in_flight_total = 0
        self.peak_in_flight = 0
        """The most requests this sink was answering at once."""
        self.overlapping_users: set[str] = set()
        """Users that had two requests in flight at the same time (on any route)."""
        self.failing: dict[str, set[str]] = {}
        """For ``/switch/<name>``: the users it fails for (``"*"``: everyone)."""
        self.delay: dict[str, float] = {}
        """For ``/switch/<name>``: seconds it takes to answer."""
        self._attempts: dict[tuple[str, str], int] = {}
        self._changed = threading.Condition()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/{route:.*}", self._handle)
        super().__init__(app, host, port)

    def url(self, route: str) -> str:
        return f"http://{self.host}:{self.port}/{route.lstrip('/')}"

    # -- what arrived ------------------------------------------------------------------

    def received(self, route: str | None = None) -> list[Received]:
        with self._changed:
            return [r for r in self._received if route is None or r.route == route]

    def accepted(self, route: str | None = None) -> list[Received]:
        """The requests answered with a 2xx: what the destination took, in that order."""
        with self._changed:
            return [r for r in self._accepted if route is None or r.route == route]

    def wait_for(self, condition: Callable[[HttpSink], bool], timeout: float = 30.0) -> bool:
        """Wait until ``condition(self)`` holds (re-checked on every request) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        route = "/" + request.match_info["route"]
        body: dict[str, Any] = json.loads(await request.read() or b"{}")
        event_id = str(body.get("id", ""))
        user_id = str(body.get("user_id", ""))
        with self._changed:
            self._in_flight_total += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight_total)
            self._in_flight[user_id] = self._in_flight.get(user_id, 0) + 1
            if self._in_flight[user_id] > 1:
                self.overlapping_users.add(user_id)
        try:
            return await self._record_and_answer(route, event_id, user_id, body, request)
        finally:
            with self._changed:
                self._in_flight_total -= 1
                self._in_flight[user_id] -= 1

    async def _record_and_answer(
        self, route: str, event_id: str, user_id: str, body: dict[str, Any], request: web.Request
    ) -> web.Response:
        received = Received(
            route=route,
            event_id=event_id,
            user_id=user_id,
            payload=str(body.get("payload", "")),
            received_at_ms=int(body.get("received_at_ms", 0)),
            arrived=time.monotonic(),
            headers=dict(request.headers),
        )
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()
        response = await self._answer(route, event_id, user_id)
        if 200 <= response.status < 300:
            with self._changed:
                self._accepted.append(received)
                self._changed.notify_all()
        return response

    async def _answer(self, route: str, event_id: str, user_id: str) -> web.Response:  # noqa: PLR0911
        if route == "/ok":
            return web.Response(status=204)
        if route == "/fail":
            return web.Response(status=500, text="mock failure")
        if route == "/fail-first":
            with self._changed:
                first = (route, event_id) not in self._seen_ids
                self._seen_ids.add((route, event_id))
            return web.Response(status=500 if first else 204)
        if route == "/hang":
            await asyncio.sleep(60)
            return web.Response(status=204)
        if route.startswith("/latency/"):
            await asyncio.sleep(int(route.rsplit("/", 1)[1]) / 1000)
            return web.Response(status=204)
        if route.startswith("/fail-user/"):
            failing = route.removeprefix("/fail-user/")
            return web.Response(status=500 if user_id == failing else 204)
        if route.startswith("/refuse/"):
            refused = self.failing.get(route.removeprefix("/refuse/"), set())
            return web.Response(status=422 if "*" in refused or user_id in refused else 204)
        if route.startswith("/switch/"):
            name = route.removeprefix("/switch/")
            if delay := self.delay.get(name):
                await asyncio.sleep(delay)
            down = self.failing.get(name, set())
            return web.Response(status=500 if "*" in down or user_id in down else 204)
        if route.startswith("/fail-times/"):
            with self._changed:
                seen = self._attempts[route, event_id] = (
                    self._attempts.get((route, event_id), 0) + 1
                )
            return web.Response(status=500 if seen <= int(route.rsplit("/", 1)[1]) else 204)
        if route.startswith("/status/"):
            return web.Response(status=int(route.rsplit("/", 1)[1]))
        return web.Response(status=404, text=f"no route {route}")
