"""A dispatcher process: every destination of its manifests, each as one asyncio task.

Start-up waits for Kafka and makes sure the topics exist (``provisioning``: events, dead
letters, the breaker-state topic; a park topic once its destination parks a user); shutdown
goes in order: stop fetching, drain
in-flight deliveries (bounded), commit, close every consumer, flush the producer, and log one
summary line. A destination that Kafka refuses to take dead letters or park records from
stops alone, loudly; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations import TYPES
from dispatcher.lookups import LookupSlots, lookup_clients
from dispatcher.manifest import Manifest
from dispatcher.metrics import DeliveryMetrics
from dispatcher.park_reader import ParkReaders
from dispatcher.park_store import ParkWriter
from dispatcher.provisioning import ParkTopic, topics_ready
from dispatcher.worker import DestinationWorker, WorkerStats
from eventlog.clients import producer_config
from eventlog.kafka_logs import kafka_logger
from eventlog.producer import AsyncProducer

__all__ = ["DispatcherSettings", "run_dispatcher"]

log = logging.getLogger(__name__)


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
    breaker state) and the consumer reading the park topics (a process holds only about 1,000
    Kafka clients: see ``park_reader``)."""

    producer: AsyncProducer
    park_readers: ParkReaders

    @classmethod
    def connect(cls, manifest: Manifest) -> _Cluster:
        servers, security = manifest.bootstrap_servers, manifest.security
        producer = AsyncProducer(
            producer_config(servers, security=security, logger=kafka_logger("producer"))
        )
        producer.start()
        readers = ParkReaders(servers, logger=kafka_logger("park-reader"), **security)
        return cls(producer, readers)

    async def close(self, flush_within: float) -> None:
        unsent = await asyncio.to_thread(self.producer.close, flush_within)
        if unsent:
            log.error("producer closed with %d unacknowledged records", unsent)


async def run_dispatcher(
    manifests: Sequence[Manifest], stop: asyncio.Event, settings: DispatcherSettings | None = None
) -> dict[str, WorkerStats]:
    """Run every destination of ``manifests`` until ``stop`` is set; return their stats."""
    settings = settings or DispatcherSettings()
    events = await topics_ready(
        manifests, partitions=settings.partitions, retry_every=settings.kafka_wait_interval,
        stop=stop,
    )  # fmt: skip
    if events is None:
        return {}
    clusters: dict[str, _Cluster] = {}
    workers: list[DestinationWorker] = []
    metrics = DeliveryMetrics()
    loop = asyncio.get_running_loop()
    metrics.watch_tasks(lambda: len(asyncio.all_tasks(loop)))
    lookup_slots = LookupSlots(lookup_clients(sum(len(m.destinations) for m in manifests)))
    for manifest in manifests:
        cluster = clusters.get(manifest.bootstrap_servers)
        if cluster is None:
            cluster = clusters[manifest.bootstrap_servers] = _Cluster.connect(manifest)
        dead_letters = DeadLetterWriter(cluster.producer, manifest.dead_letter_topic)
        for spec in manifest.destinations:
            parks = ParkTopic(manifest, spec, events[manifest.path])
            workers.append(
                DestinationWorker(
                    manifest=manifest,
                    spec=spec,
                    destination=TYPES[spec.type].create(spec.name, spec.options, spec.concurrency),
                    dead_letters=dead_letters,
                    park=ParkWriter(cluster.producer, parks.name, prepare=parks.ensure),
                    bootstrap_servers=manifest.bootstrap_servers,
                    retention_ms=events[manifest.path].retention_ms,
                    producer=cluster.producer,
                    lookup_slots=lookup_slots,
                    park_readers=cluster.park_readers,
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
