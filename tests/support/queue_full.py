"""A fault librdkafka produces under load, made to happen on cue: its local queue is full."""

from __future__ import annotations

from typing import Any

import confluent_kafka

__all__ = ["QueueFullAtFirst"]


class QueueFullAtFirst(confluent_kafka.Producer):
    """The real librdkafka producer, except that its local queue reports itself full
    (``BufferError``) for the first ``refusals`` records: the moment at which one record waits
    for room while later ones find it."""

    refusals = 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if QueueFullAtFirst.refusals > 0:
            QueueFullAtFirst.refusals -= 1
            raise BufferError("Local: Queue full")
        super().produce(*args, **kwargs)
