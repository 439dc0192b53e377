"""The destinations' receiver: one loopback HTTP server recording every request in arrival
order. ``POST /ok/<destination>`` answers 204; ``POST /hang/<destination>`` records the request
and never answers (until the sink stops), the destination that accepts connections and then
says nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Self

from aiohttp import web

from reliability.check import Delivery

__all__ = ["Sink"]


class Sink:
    """Serves on 127.0.0.1 (a port the OS picks) from a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = 0
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def url(self, destination: str, *, hang: bool = False) -> str:
        return f"http://127.0.0.1:{self.port}/{'hang' if hang else 'ok'}/{destination}"

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
        body = json.loads(await request.read())
        delivery = Delivery(
            destination=request.match_info["destination"],
            event_id=str(body["id"]),
            user=str(body["user_id"]),
            seq=int(body["payload"]),
        )
        with self._lock:
            self._deliveries.append(delivery)
        if request.match_info["mode"] == "hang":
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
        app.router.add_post(r"/{mode:ok|hang}/{destination}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        self.port = runner.addresses[0][1]
        started.set()
        await self._stopped.wait()
        await runner.cleanup()
