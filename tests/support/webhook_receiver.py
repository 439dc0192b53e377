"""A webhook receiver on loopback that verifies each request as a Standard Webhooks receiver
would: with the independent ``standardwebhooks`` package, never with our own signing code.

It holds one or more secrets (as a receiver mid-rotation might hold only the old or only the
new one); a request that verifies with any of them gets 204, any other 401. With
``fail_first=n`` the first ``n`` requests that verify get 500 instead (a receiver having a bad
moment), so that the sender tries again. Every request is kept (headers and the exact body
bytes) so tests can verify it again, or tamper with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.loopback_server import LoopbackServer

__all__ = ["SignedRequest", "WebhookReceiver", "verifies"]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One request as it arrived."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    """Whether it verified with one of the receiver's secrets."""


def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """Whether ``standardwebhooks`` accepts ``body`` with ``headers`` under ``secret``."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


class WebhookReceiver(LoopbackServer):
    def __init__(self, secrets: Sequence[str], *, fail_first: int = 0) -> None:
        self.secrets = tuple(secrets)
        self._failures_left = fail_first
        self._requests: list[SignedRequest] = []
        self._changed = threading.Condition()
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        super().__init__(app)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def requests(self) -> list[SignedRequest]:
        with self._changed:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[SignedRequest]:
        """The first ``count`` requests, once that many arrived (``AssertionError`` if not)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self._requests)} of {count} requests arrived"
                self._changed.wait(left)
            return list(self._requests[:count])

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        verified = any(verifies(secret, body, headers) for secret in self.secrets)
        status = 204 if verified else 401
        with self._changed:
            if verified and self._failures_left > 0:
                self._failures_left -= 1
                status = 500
            self._requests.append(SignedRequest(headers, body, verified))
            self._changed.notify_all()
        return web.Response(status=status)
