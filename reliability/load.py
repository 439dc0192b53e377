"""The steady load: many users, each sending its numbered events one after another at a fixed
pace, and the record of what ingest answered. The 202s are the oracle of every scenario.

A user whose request failed (503, refused, cut off) does not send that number again: the next
event gets the next number, so an event stored despite its failed answer never collides with
a later one, and order stays checkable.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from typing import Self

import aiohttp

from reliability.check import Accepted

__all__ = ["Load"]

REQUEST_TIMEOUT = 15.0
"""Longer than ingest's --ack-timeout, so ingest, not the client, decides a request's fate."""


class Load:
    """``users`` users sending ``rate`` events per second in all to ``url`` until stopped."""

    def __init__(self, url: str, *, users: int, rate: float) -> None:
        self.url = url
        self.users = users
        self.rate = rate
        self._lock = threading.Lock()
        self._accepted: list[Accepted] = []
        self._acked_at: list[float] = []
        self.answers: Counter[str] = Counter()
        """How many requests got each answer: ``202``, ``503``, ``error`` (no answer)…"""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def accepted(self) -> list[Accepted]:
        with self._lock:
            return list(self._accepted)

    def count_accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def acknowledged_at(self) -> list[float]:
        """``time.monotonic()`` of every 202."""
        with self._lock:
            return list(self._acked_at)

    def wait_for_accepted(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._accepted) >= count:
                    return True
            time.sleep(0.1)
        return False

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending; returns once every request in flight was answered or timed out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT + 10)

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        connector = aiohttp.TCPConnector(limit=self.users)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._user(session, f"user-{u}") for u in range(self.users)))

    async def _user(self, session: aiohttp.ClientSession, user: str) -> None:
        period = self.users / self.rate
        await asyncio.sleep(random.uniform(0, period))  # noqa: S311 - spreads users, not security
        seq = 0
        while not self._stop.is_set():
            started = time.monotonic()
            await self._send(session, user, seq)
            seq += 1
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    async def _send(self, session: aiohttp.ClientSession, user: str, seq: int) -> None:
        try:
            async with session.put(
                f"{self.url}/events", json={"user_id": user, "payload": str(seq)}
            ) as response:
                status = response.status
                body = await response.json() if status == 202 else None
                bare_503 = status == 503 and "Retry-After" not in response.headers
        except (aiohttp.ClientError, TimeoutError):
            with self._lock:
                self.answers["error"] += 1
            return
        with self._lock:
            self.answers[str(status)] += 1
            if bare_503:
                self.answers["503 without Retry-After"] += 1
            if body is not None:
                self._accepted.append(
                    Accepted(str(body["id"]), user, seq, body["partition"], body["offset"])
                )
                self._acked_at.append(time.monotonic())
