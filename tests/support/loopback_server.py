"""An aiohttp app served on loopback from a thread with its own event loop, so tests of any
style (sync or async, in-process or not) can run a small server beside what they test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Self

from aiohttp import web

__all__ = ["LoopbackServer"]


class LoopbackServer:
    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        """The port listened on (the one the OS chose, once started with 0)."""
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("loopback server did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def refuse_connections(self) -> None:
        """Stop listening and drop open connections: clients get "connection refused"."""
        self._call(self._refuse())

    def accept_connections(self) -> None:
        """Listen again, on the same port."""
        self._call(self._accept())

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    async def _refuse(self) -> None:
        assert self._runner is not None and self._site is not None
        await self._site.stop()
        server = self._runner.server
        for handler in server.connections if server is not None else []:
            handler.force_close()
            if handler.transport is not None:
                handler.transport.close()

    async def _accept(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(
            self._runner, self.host, self.port, backlog=1024, reuse_address=True
        )
        await self._site.start()

    def _serve(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        # A short shutdown timeout: handlers still waiting (a "hanging" route) are dropped.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
        loop.run_until_complete(site.start())
        self._runner, self._site = runner, site
        self.port = runner.addresses[0][1]
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()
