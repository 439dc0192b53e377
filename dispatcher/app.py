"""A dispatcher process: every destination of its manifests, each as one asyncio task.

Start-up waits for Kafka and makes sure the topics exist (events, dead letters, one park topic
per destination, the breaker-state topic); shutdown goes in order: stop fetching, drain
in-flight deliveries (bounded), commit, close every consumer, flush the producer, and log one
summary line. A destination that Kafka refuses to take dead letters or park records from
stops alone, loudly; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic

from dispatcher.breaker_state import state_topic
from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations import TYPES
from dispatcher.manifest import Manifest, retention_warnings
from dispatcher.metrics import DeliveryMetrics
from dispatcher.park_records import park_topic
from dispatcher.park_store import ParkWriter
from dispatcher.worker import DestinationWorker, WorkerStats
from eventlog.clients import admin_config, producer_config
from eventlog.credentials import credentials_refused
from eventlog.exceptions import TopicError
from eventlog.kafka_logs import kafka_logger
from eventlog.producer import AsyncProducer
from eventlog.topics import TopicSpec, TopicState, ensure_topic

__all__ = ["DispatcherSettings", "run_dispatcher"]

log = logging.getLogger(__name__)

RECORD_HEADROOM = 64 * 1024
"""Bytes a dead letter or park record may add to the event it carries (its own headers)."""
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default ``max.message.bytes`` (what ingest's events topic keeps)."""


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """Process-wide settings (the manifests say what to deliver where)."""

    partitions: int = 12
    """Partitions of the events topic when this process creates it (the dead-letter and park
    topics get as many as the events topic has)."""
    commit_interval: float = 1.0
    """Seconds between periodic commits of finished offsets."""
    drain_timeout: float = 10.0
    """Seconds in-flight deliveries may take to finish at shutdown before they are abandoned
    (abandoned events are redelivered after restart, never lost)."""
    kafka_wait_interval: float = 2.0
    """Seconds between attempts to reach Kafka at start-up."""


@dataclass(frozen=True, slots=True)
class _Cluster:
    """What every destination on one Kafka cluster shares: a producer (dead letters, park,
    breaker state)."""

    producer: AsyncProducer

    @classmethod
    def connect(cls, manifest: Manifest) -> _Cluster:
        servers, security = manifest.bootstrap_servers, manifest.security
        producer = AsyncProducer(
            producer_config(servers, security=security, logger=kafka_logger("producer"))
        )
        producer.start()
        return cls(producer)

    async def close(self, flush_within: float) -> None:
        unsent = await asyncio.to_thread(self.producer.close, flush_within)
        if unsent:
            log.error("producer closed with %d unacknowledged records", unsent)


async def run_dispatcher(
    manifests: Sequence[Manifest], stop: asyncio.Event, settings: DispatcherSettings | None = None
) -> dict[str, WorkerStats]:
    """Run every destination of ``manifests`` until ``stop`` is set; return their stats."""
    settings = settings or DispatcherSettings()
    events = await _topics_ready(manifests, settings, stop)
    if events is None:
        return {}
    clusters: dict[str, _Cluster] = {}
    workers: list[DestinationWorker] = []
    metrics = DeliveryMetrics()
    loop = asyncio.get_running_loop()
    metrics.watch_tasks(lambda: len(asyncio.all_tasks(loop)))
    for manifest in manifests:
        cluster = clusters.get(manifest.bootstrap_servers)
        if cluster is None:
            cluster = clusters[manifest.bootstrap_servers] = _Cluster.connect(manifest)
        dead_letters = DeadLetterWriter(cluster.producer, manifest.dead_letter_topic)
        for spec in manifest.destinations:
            workers.append(
                DestinationWorker(
                    manifest=manifest,
                    spec=spec,
                    destination=TYPES[spec.type].create(spec.name, spec.options, spec.concurrency),
                    dead_letters=dead_letters,
                    park=ParkWriter(cluster.producer, park_topic(manifest.topic, spec.name)),
                    bootstrap_servers=manifest.bootstrap_servers,
                    retention_ms=events[manifest.path].retention_ms,
                    producer=cluster.producer,
                    commit_interval=settings.commit_interval,
                    drain_timeout=settings.drain_timeout,
                    metrics=metrics,
                )
            )
    log.info(
        "dispatcher running destinations=%d manifests=%s",
        len(workers),
        ",".join(str(m.path) for m in manifests),
    )
    tasks = [asyncio.create_task(w.run(stop), name=f"destination:{w.name}") for w in workers]
    for task in tasks:
        task.add_done_callback(lambda t: _stop_on_crash(t, stop))
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for cluster in clusters.values():
            await cluster.close(settings.drain_timeout)
    crashed = []
    for worker, result in zip(workers, results, strict=True):
        if isinstance(result, BaseException):
            log.error("destination crashed destination=%s error=%r", worker.name, result)
            crashed.append(worker.name)
    stats = {worker.name: worker.stats for worker in workers}
    log.info(
        "dispatcher stopped destinations=%d delivered=%d dead_lettered=%d parked=%d attempts=%d",
        len(stats),
        sum(s.delivered for s in stats.values()),
        sum(s.dead_lettered for s in stats.values()),
        sum(s.parked for s in stats.values()),
        sum(s.attempts for s in stats.values()),
    )
    if crashed:
        raise RuntimeError(f"destinations crashed: {', '.join(crashed)}")
    stopped = [worker.name for worker in workers if worker.stopped_by is not None]
    if stopped:
        # Exit non-zero: a supervisor restarting the process gives them another go once the
        # cause (a topic Kafka refuses to write) is fixed; their events wait uncommitted.
        raise RuntimeError(f"destinations stopped: {', '.join(stopped)}")
    return stats


def _stop_on_crash(task: asyncio.Task[WorkerStats], stop: asyncio.Event) -> None:
    # One destination's consumer failing fatally stops the process (non-zero exit) so its
    # supervisor restarts it, rather than running on with that destination silently idle.
    if not task.cancelled() and task.exception() is not None and not stop.is_set():
        log.error("stopping: %s failed: %r", task.get_name(), task.exception())
        stop.set()


async def _topics_ready(
    manifests: Sequence[Manifest], settings: DispatcherSettings, stop: asyncio.Event
) -> dict[object, TopicState] | None:
    """Ensure every topic exists, waiting for Kafka as long as it takes (or until ``stop``:
    then ``None``). Returns the events topic's state per manifest path."""
    events: dict[object, TopicState] = {}
    for manifest in manifests:
        config = admin_config(manifest.bootstrap_servers, security=manifest.security)
        # A refused login never fixes itself: one line and exit 1, not a retry loop.
        if manifest.security and (refused := await asyncio.to_thread(credentials_refused, config)):
            raise RuntimeError(refused)
        admin = AdminClient(config)
        copies = manifest.replication_factor
        min_isr = manifest.min_insync_replicas
        spec = TopicSpec(
            name=manifest.topic, partitions=settings.partitions, replication_factor=copies,
            min_insync_replicas=min_isr,
        )  # fmt: skip
        state = await _ensure(admin, spec, manifest, settings, stop)
        if state is None:
            return None
        events[manifest.path] = state
        # --check assumed the default retention; now the topic's own is known.
        for warning in retention_warnings(manifest, retention_seconds=state.retention_ms / 1000):
            log.warning("%s", warning)
        # Room for the largest event the events topic takes, plus our headers.
        limit = (state.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES) + RECORD_HEADROOM
        carriers = [
            TopicSpec(
                name=manifest.dead_letter_topic, partitions=state.partitions,
                max_message_bytes=limit, replication_factor=copies, min_insync_replicas=min_isr,
            ),
            *(
                TopicSpec(
                    name=park_topic(manifest.topic, spec.name), partitions=state.partitions,
                    retention_ms=int(spec.parking.retention * 1000), max_message_bytes=limit,
                    replication_factor=copies, min_insync_replicas=min_isr,
                )
                for spec in manifest.destinations
            ),
        ]  # fmt: skip
        for carrier in carriers:
            if await _ensure(admin, carrier, manifest, settings, stop) is None:
                return None
        await asyncio.to_thread(_ensure_state_topic, admin, manifest)
    return events


async def _ensure(
    admin: AdminClient,
    spec: TopicSpec,
    manifest: Manifest,
    settings: DispatcherSettings,
    stop: asyncio.Event,
) -> TopicState | None:
    while True:
        try:
            return await asyncio.to_thread(ensure_topic, admin, spec, timeout=10.0)
        except TopicError as exc:
            log.warning(
                "waiting for kafka bootstrap=%s topic=%s error=%s",
                manifest.bootstrap_servers, spec.name, exc,
            )  # fmt: skip
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.kafka_wait_interval)
        except TimeoutError:
            continue
        return None


def _ensure_state_topic(admin: AdminClient, manifest: Manifest) -> None:
    """The small compacted topic of breaker states (best effort: status only reads it)."""
    topic = NewTopic(
        state_topic(manifest.topic),
        num_partitions=1,
        replication_factor=manifest.replication_factor,
        config={
            "cleanup.policy": "compact",
            "min.insync.replicas": str(manifest.min_insync_replicas),
        },
    )
    try:
        admin.create_topics([topic], operation_timeout=10)[topic.topic].result(timeout=10)
    except Exception as exc:  # already there, or not important enough to stop
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            log.warning("breaker-state topic not created topic=%s error=%s", topic.topic, exc)
