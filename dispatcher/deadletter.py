"""The dead-letter topic: where an event goes that its destination refused for good.

Dead letters are permanent failures (a 400/422 the receiver means for this one event, or a
record this version cannot read): retrying cannot help, so the user's later events go on.
Transient trouble never ends here; it parks the user (``dispatcher/parking.py``).

The record keeps the original key, value and headers, and adds headers saying which destination
gave up, why, after how many attempts, and where the event was on the events topic:

``dead-letter-destination``, ``dead-letter-error``, ``dead-letter-attempts``,
``dead-letter-permanent`` (``true``/``false``), ``dead-letter-topic``,
``dead-letter-partition``, ``dead-letter-offset``, ``dead-letter-at-ms``.

Only once the broker acknowledged it (``acks=all``) may the original offset be committed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from dispatcher.durable import write_durably
from eventlog.producer import AsyncProducer, Delivered
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
        kept = [h for h in self.headers if not h[0].startswith(PREFIX)]
        return [*kept, *own]


class DeadLetterWriter:
    """Writes dead letters until the broker acknowledges (``StoreRefused`` if it never will)."""

    def __init__(self, producer: AsyncProducer, topic: str, *, retry_interval: float = 1.0) -> None:
        self._producer = producer
        self.topic = topic
        self._retry_interval = retry_interval

    async def write(self, letter: DeadLetter) -> Delivered:
        """Store ``letter``; the offset stays uncommitted until this returns."""
        delivered = await write_durably(
            self._producer,
            self.topic,
            key=letter.key or b"",
            value=letter.value or b"",
            headers=letter.record_headers(int(time.time() * 1000)),
            what=f"the dead letter of {letter.destination} {letter.partition}:{letter.offset}",
            retry_interval=self._retry_interval,
        )
        log.warning(
            "dead-lettered destination=%s partition=%d offset=%d attempts=%d "
            "dead_letter_topic=%s dead_letter_offset=%d error=%r",
            letter.destination, letter.partition, letter.offset, letter.attempts,
            delivered.topic, delivered.offset, letter.error[:200],
        )  # fmt: skip
        return delivered
