"""The destinations' receiver: one loopback HTTP server recording every request in arrival
order. ``POST /ok/<destination>`` answers 204; ``POST /hang/<destination>`` records the request
and never answers (until the sink stops), the destination that accepts connections and then
says nothing; ``POST /flap/<destination>`` answers 204 for ``flap_up`` seconds, then 503 for
``flap_down`` seconds, and so on (a destination that keeps going down and coming back)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Literal, Self

from aiohttp import web

from reliability.check import Delivery

__all__ = ["Sink"]


class Sink:
    """Serves on 127.0.0.1 (a port the OS picks) from a thread with its own event loop."""

    def __init__(self, *, flap_up: float = 60.0, flap_down: float = 30.0) -> None:
        self.port = 0
        self.flap_up = flap_up
        self.flap_down = flap_down
        self._started = time.monotonic()
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def url(self, destination: str, mode: Literal["ok", "hang", "flap"] = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/{destination}"

    def flapping_up(self) -> bool:
        """Whether ``/flap/`` routes answer 204 now."""
        phase = (time.monotonic() - self._started) % (self.flap_up + self.flap_down)
        return phase < self.flap_up

    def deliveries(self) -> list[Delivery]:
        """Every request so far, in the order they arrived."""
        with self._lock:
            return list(self._deliveries)

    def count(self) -> int:
        with self._lock:
            return len(self._deliveries)

    def __enter__(self) -> Self:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the sink did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.Response:
        """Record the request (an attempt of a hanging destination, else a delivery) unless
        it is refused; only what was answered 204 or never answered is recorded."""
        body = json.loads(await request.read())
        mode = request.match_info["mode"]
        if mode == "flap" and not self.flapping_up():
            return web.Response(status=503)
        delivery = Delivery(
            destination=request.match_info["destination"],
            event_id=str(body["id"]),
            user=str(body["user_id"]),
            seq=int(body["payload"]),
        )
        with self._lock:
            self._deliveries.append(delivery)
        if mode == "hang":
            assert self._stopped is not None
            await self._stopped.wait()
        return web.Response(status=204)

    def _serve(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._run(started))
        loop.close()

    async def _run(self, started: threading.Event) -> None:
        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_post(r"/{mode:ok|hang|flap}/{destination}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        self.port = runner.addresses[0][1]
        started.set()
        await self._stopped.wait()
        await runner.cleanup()
