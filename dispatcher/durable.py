"""Writing a record the dispatcher must not lose (dead letters, parked events, park markers).

``acks=all``, retried for as long as the error is retriable (the event stays unfinished, so
its offset stays uncommitted meanwhile). A non-retriable error (a record too large for the
topic, an authorization failure) will never succeed: it raises ``StoreRefused`` so the worker
stops that destination with one clear line, its events left uncommitted in Kafka.
"""

from __future__ import annotations

import asyncio
import logging

from dispatcher.exceptions import DispatcherError
from eventlog.producer import AsyncProducer, Delivered, ProduceError
from eventlog.record import Headers

__all__ = ["StoreRefused", "write_durably"]

log = logging.getLogger(__name__)


class StoreRefused(DispatcherError):
    """Kafka refused a dead letter or park record for good: the destination must stop."""


async def write_durably(
    producer: AsyncProducer,
    topic: str,
    *,
    key: bytes,
    value: bytes,
    headers: Headers,
    partition: int | None = None,
    what: str,
    retry_interval: float = 1.0,
) -> Delivered:
    """Store one record, waiting out retriable failures; ``what`` names it in logs."""
    while True:
        try:
            return await producer.produce(
                topic, key=key, value=value, headers=headers, partition=partition
            )
        except ProduceError as exc:
            if not exc.retriable:
                raise StoreRefused(f"{topic} refused {what}: {exc}") from exc
            log.error(
                "write failed topic=%s record=%r error=%r; retrying in %.1fs",
                topic, what, str(exc), retry_interval,
            )  # fmt: skip
            await asyncio.sleep(retry_interval)
