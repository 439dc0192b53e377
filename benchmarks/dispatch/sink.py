"""The destination every dispatch run delivers to, in a process of its own: it answers
``POST /latency/<ms>[/<tag>]`` with 204 after ``ms`` milliseconds and counts what arrived
(``GET /stats``; ``DELETE /stats`` resets).

It is the compiled sink (``benchmarks/sink/main.go``) when Go is installed, so that its CPU per
request stays far below the dispatcher's; otherwise the aiohttp app here (``python -m
benchmarks.dispatch.sink``), which answers the same way."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from benchmarks.loopback import HelperClient, helper_command, serving
from benchmarks.sink import compiled_sink

__all__ = [
    "AIOHTTP_SINK",
    "GO_SINK",
    "CountingSink",
    "SinkClient",
    "SinkStats",
    "is_tagged",
    "latency_of",
    "sink",
]

QUIET = 0.2
"""Seconds without an arrival, well above any latency the benchmark asks for, before the
counts are reset."""
GO_SINK = "Go (net/http)"
AIOHTTP_SINK = "aiohttp"


def latency_of(path: str) -> float:
    """Seconds ``/latency/<ms>[/<tag>]`` asks the sink to wait; 0 for any other path."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "latency" and parts[2].isdigit():
        return int(parts[2]) / 1000
    return 0.0


def is_tagged(path: str) -> bool:
    """Whether ``path`` names a tag (``/latency/<ms>/<tag>``): one of many destinations."""
    return path.count("/") >= 3


class CountingSink:
    """Answers every POST with 204 after the latency its path names, counting each answer;
    for tagged paths also the distinct event ids, so retried attempts do not count twice."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.paths: Counter[str] = Counter()
        self.ids: defaultdict[str, set[str]] = defaultdict(set)

    def clear(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0
        self.paths.clear()
        self.ids.clear()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/stats", self.stats)
        app.router.add_delete("/stats", self.reset)
        app.router.add_post("/{path:.*}", self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if is_tagged(request.path):
            self.ids[request.path].add(str(json.loads(body).get("id")))
        if delay := latency_of(request.path):
            await asyncio.sleep(delay)
        now = time.monotonic()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        self.paths[request.path] += 1
        return web.Response(status=204)

    async def stats(self, _: web.Request) -> web.Response:
        distinct = {path: len(ids) for path, ids in self.ids.items()}
        return web.json_response(
            {
                "count": self.count,
                "first": self.first,
                "last": self.last,
                "now": time.monotonic(),
                "paths": self.paths,
                "distinct": distinct,
            }
        )

    async def reset(self, _: web.Request) -> web.Response:
        self.clear()
        return web.Response(status=204)


@dataclass(frozen=True, slots=True)
class SinkStats:
    count: int
    first: float
    last: float
    """When the first and the last arrival came, by the sink's clock."""
    now: float
    """When the sink answered this, by the same clock."""
    paths: dict[str, int]
    """Arrivals per path."""
    distinct: dict[str, int]
    """Distinct event ids per tagged path."""

    @property
    def seconds(self) -> float:
        return self.last - self.first


class SinkClient(HelperClient):
    """The benchmark's view of the sink process."""

    kind = AIOHTTP_SINK
    """Which sink it is: ``GO_SINK`` or ``AIOHTTP_SINK``."""

    def url(self, latency_ms: int, tag: str = "") -> str:
        return f"{self.base_url}/latency/{latency_ms}" + (f"/{tag}" if tag else "")

    def stats(self) -> SinkStats:
        body = self.http.get("/stats").raise_for_status().json()
        return SinkStats(
            body["count"], body["first"], body["last"], body["now"], body["paths"], body["distinct"]
        )

    def reset(self, quiet: float = QUIET) -> None:
        """Forget what arrived, once nothing has for ``quiet`` seconds: a request the last
        client sent before it stopped is still counted when the latency is over, and would
        otherwise pass for the next client's first delivery."""
        seen = self.stats().count
        while True:
            time.sleep(quiet)
            if (count := self.stats().count) == seen:
                break
            seen = count
        self.http.delete("/stats").raise_for_status()


@contextmanager
def sink(workdir: Path) -> Iterator[SinkClient]:
    """A running sink process (the compiled one if it can be built), stopped on leaving the
    block."""
    binary = compiled_sink()
    argv = [str(binary)] if binary else [sys.executable, "-m", __name__]
    with serving("sink", argv, workdir, SinkClient) as client:
        client.kind = GO_SINK if binary else AIOHTTP_SINK
        yield client


main = helper_command(lambda: CountingSink().application(), "Serve the counting sink.")

if __name__ == "__main__":
    main()
