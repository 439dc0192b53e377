"""The dead-letter topic: where an event goes for a destination that could not take it.

The record keeps the original key, value and headers, and adds headers saying which destination
gave up, why, after how many attempts, and where the event was on the events topic:

``dead-letter-destination``, ``dead-letter-error``, ``dead-letter-attempts``,
``dead-letter-permanent`` (``true``/``false``), ``dead-letter-topic``,
``dead-letter-partition``, ``dead-letter-offset``, ``dead-letter-at-ms``.

Only once the broker acknowledged it (``acks=all``) may the original offset be committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from eventlog.producer import AsyncProducer, Delivered, ProduceError
from eventlog.record import Headers

__all__ = ["DeadLetter", "DeadLetterWriter"]

log = logging.getLogger(__name__)

PREFIX = "dead-letter-"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a destination gave up on, with the record it came from."""

    destination: str
    error: str
    attempts: int
    permanent: bool
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def record_headers(self, now_ms: int) -> Headers:
        own: Headers = [
            (f"{PREFIX}destination", self.destination.encode()),
            (f"{PREFIX}error", self.error.encode()[:1000]),
            (f"{PREFIX}attempts", str(self.attempts).encode()),
            (f"{PREFIX}permanent", b"true" if self.permanent else b"false"),
            (f"{PREFIX}topic", self.topic.encode()),
            (f"{PREFIX}partition", str(self.partition).encode()),
            (f"{PREFIX}offset", str(self.offset).encode()),
            (f"{PREFIX}at-ms", str(now_ms).encode()),
        ]
        return [*self.headers, *own]


class DeadLetterWriter:
    """Writes dead letters, retrying until the broker acknowledges or the caller cancels."""

    def __init__(self, producer: AsyncProducer, topic: str, *, retry_interval: float = 1.0) -> None:
        self._producer = producer
        self.topic = topic
        self._retry_interval = retry_interval

    async def write(self, letter: DeadLetter) -> Delivered:
        """Store ``letter``; keeps trying (the offset stays uncommitted meanwhile)."""
        while True:
            try:
                delivered = await self._producer.produce(
                    self.topic,
                    key=letter.key or b"",
                    value=letter.value or b"",
                    headers=letter.record_headers(int(time.time() * 1000)),
                )
            except ProduceError as exc:
                log.error(
                    "dead-letter write failed destination=%s partition=%d offset=%d error=%r; "
                    "offset stays uncommitted, retrying in %.1fs",
                    letter.destination,
                    letter.partition,
                    letter.offset,
                    str(exc),
                    self._retry_interval,
                )
                await asyncio.sleep(self._retry_interval)
                continue
            log.warning(
                "dead-lettered destination=%s partition=%d offset=%d attempts=%d "
                "dead_letter_topic=%s dead_letter_offset=%d",
                letter.destination,
                letter.partition,
                letter.offset,
                letter.attempts,
                delivered.topic,
                delivered.offset,
            )
            return delivered
