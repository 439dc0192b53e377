"""Whether ingest can take events: its latest writes were acknowledged, the producer reaches
the cluster, the topic exists and each of its partitions has a leader.

librdkafka reports connection trouble through the producer's ``error_cb`` (on the poll thread);
``KafkaWatch`` turns that stream into one log line per change of state. ``Readiness`` answers
``/readyz`` from the outcome of the latest writes (``ingest.write_health``: metadata can be
stale) and by asking the cluster, through the producer's own connections, to describe the topic.
"""

from __future__ import annotations

import asyncio
import logging
import time

from confluent_kafka import KafkaError, KafkaException

from ingest.publisher import EventProducer
from ingest.write_health import WriteHealth

__all__ = ["KafkaWatch", "Readiness"]

log = logging.getLogger(__name__)


class KafkaWatch:
    """What the producer's error callback last said about the cluster."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self.fatal: str | None = None
        """Why the producer can no longer be used (librdkafka fatal error), if it cannot."""
        self._troubled = False

    def on_error(self, error: KafkaError) -> None:
        """The producer's ``error_cb``: log the first error of a bad spell, not every retry."""
        if error.fatal():
            self.fatal = error.str()
            log.error("kafka producer failed for good; restart ingest error=%s", error.str())
        elif not self._troubled:
            self._troubled = True
            log.warning(
                "kafka unreachable or failing; events get 503 until it answers "
                "bootstrap=%s code=%s error=%s",
                self._bootstrap,
                error.name(),
                error.str(),
            )

    def on_success(self) -> None:
        """Kafka acknowledged something or answered a readiness check."""
        if self._troubled:
            self._troubled = False
            log.info("kafka answers again bootstrap=%s", self._bootstrap)


class Readiness:
    """Answers "may a load balancer send events here now?" with a reason when not."""

    def __init__(
        self,
        producer: EventProducer,
        watch: KafkaWatch,
        *,
        topic: str,
        timeout: float,
        writes: WriteHealth | None = None,
    ) -> None:
        self._producer = producer
        self._watch = watch
        self._writes = writes or WriteHealth(hold=0.0)
        self._topic = topic
        self._timeout = timeout
        self.topic_ensured = False
        """Set once ingest created the topic or found it."""
        self.stopping = False
        """Set when shutdown begins."""
        self._check: asyncio.Task[str | None] | None = None

    async def not_ready_because(self) -> str | None:
        """``None`` when ready, else why not. Concurrent callers share one cluster query."""
        if self.stopping:
            return "shutting down"
        if self._watch.fatal is not None:
            return f"kafka producer failed: {self._watch.fatal}"
        if not self.topic_ensured:
            return f"topic {self._topic} not created or found yet"
        if (reason := self._writes.not_ready_because(time.monotonic())) is not None:
            return reason
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(asyncio.to_thread(self._describe_topic))
        return await asyncio.shield(self._check)

    def _describe_topic(self) -> str | None:
        try:
            metadata = self._producer.client.list_topics(self._topic, timeout=self._timeout)
        except KafkaException as exc:
            return f"kafka did not answer: {exc.args[0].str()}"
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            reason = topic.error.str() if topic is not None and topic.error else "missing"
            return f"topic {self._topic}: {reason}"
        for number, partition in sorted(topic.partitions.items()):
            # A partition without a leader (or led by a broker the cluster no longer lists)
            # takes no writes: its users' events would all be answered 503.
            if partition.leader < 0 or partition.leader not in metadata.brokers:
                return f"partition {number} of topic {self._topic} has no leader"
        self._watch.on_success()
        return None
