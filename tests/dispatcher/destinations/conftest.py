"""The HTTP destination's tests that send requests run once per HTTP client it can be built
on: aiohttp (``HttpDestination``, what the dispatcher uses) and pyreqwest
(``ReqwestHttpDestination``, which the transport benchmark compares with it, issue 14). Both
must mean the same by every answer; where they cannot, the test says why."""

from __future__ import annotations

from typing import Protocol

import pytest

from dispatcher.destinations.base import Destination
from dispatcher.destinations.http import HttpDestination, HttpOptions
from dispatcher.destinations.http_reqwest import ReqwestHttpDestination

CLIENTS = ("aiohttp", "pyreqwest")


class MakeDestination(Protocol):
    """Builds an ``http`` destination on one client. ``attempt_timeout`` is the caller's
    per-attempt timeout, which pyreqwest needs to know (cancelling does not stop its
    requests); aiohttp needs nothing but the cancelling."""

    client: str

    def __call__(
        self,
        name: str,
        options: HttpOptions,
        concurrency: int = 100,
        *,
        attempt_timeout: float | None = None,
    ) -> Destination: ...


class _Make:
    def __init__(self, client: str) -> None:
        self.client = client

    def __call__(
        self,
        name: str,
        options: HttpOptions,
        concurrency: int = 100,
        *,
        attempt_timeout: float | None = None,
    ) -> Destination:
        if self.client == "aiohttp":
            return HttpDestination(name, options, concurrency)
        return ReqwestHttpDestination(name, options, concurrency, attempt_timeout=attempt_timeout)


@pytest.fixture(params=CLIENTS)
def make_destination(request: pytest.FixtureRequest) -> MakeDestination:
    """A maker of ``http`` destinations on each client in turn."""
    return _Make(request.param)
