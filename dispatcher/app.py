"""A dispatcher process: every destination of its manifests, each as one asyncio task.

Start-up waits for Kafka and makes sure the events and dead-letter topics exist; shutdown goes
in order: stop fetching, drain in-flight deliveries (bounded), commit, close every consumer,
flush the dead-letter producer, and log one summary line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations import TYPES
from dispatcher.manifest import Manifest
from dispatcher.metrics import DeliveryMetrics
from dispatcher.worker import DestinationWorker, WorkerStats
from eventlog.clients import admin_config, producer_config
from eventlog.exceptions import TopicError
from eventlog.producer import AsyncProducer
from eventlog.topics import TopicSpec, ensure_topic

__all__ = ["DispatcherSettings", "run_dispatcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """Process-wide settings (the manifests say what to deliver where)."""

    partitions: int = 12
    """Partitions of the events and dead-letter topics when this process creates them."""
    commit_interval: float = 1.0
    """Seconds between periodic commits of finished offsets."""
    drain_timeout: float = 10.0
    """Seconds in-flight deliveries may take to finish at shutdown before they are abandoned
    (abandoned events are redelivered after restart, never lost)."""
    kafka_wait_interval: float = 2.0
    """Seconds between attempts to reach Kafka at start-up."""


async def run_dispatcher(
    manifests: Sequence[Manifest], stop: asyncio.Event, settings: DispatcherSettings | None = None
) -> dict[str, WorkerStats]:
    """Run every destination of ``manifests`` until ``stop`` is set; return their stats."""
    settings = settings or DispatcherSettings()
    if not await _topics_ready(manifests, settings, stop):
        return {}
    producers: dict[str, AsyncProducer] = {}
    workers: list[DestinationWorker] = []
    metrics = DeliveryMetrics()
    for manifest in manifests:
        producer = producers.get(manifest.bootstrap_servers)
        if producer is None:
            producer = AsyncProducer(producer_config(manifest.bootstrap_servers))
            producer.start()
            producers[manifest.bootstrap_servers] = producer
        dead_letters = DeadLetterWriter(producer, manifest.dead_letter_topic)
        for spec in manifest.destinations:
            workers.append(
                DestinationWorker(
                    manifest=manifest,
                    spec=spec,
                    destination=TYPES[spec.type].create(spec.name, spec.options, spec.concurrency),
                    dead_letters=dead_letters,
                    bootstrap_servers=manifest.bootstrap_servers,
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
        for producer in producers.values():
            unsent = await asyncio.to_thread(producer.close, settings.drain_timeout)
            if unsent:
                log.error("dead-letter producer closed with %d unacknowledged records", unsent)
    crashed = []
    for worker, result in zip(workers, results, strict=True):
        if isinstance(result, BaseException):
            log.error("destination crashed destination=%s error=%r", worker.name, result)
            crashed.append(worker.name)
    stats = {worker.name: worker.stats for worker in workers}
    log.info(
        "dispatcher stopped destinations=%d delivered=%d dead_lettered=%d attempts=%d",
        len(stats),
        sum(s.delivered for s in stats.values()),
        sum(s.dead_lettered for s in stats.values()),
        sum(s.attempts for s in stats.values()),
    )
    if crashed:
        raise RuntimeError(f"destinations crashed: {', '.join(crashed)}")
    return stats


def _stop_on_crash(task: asyncio.Task[WorkerStats], stop: asyncio.Event) -> None:
    # One destination's consumer failing fatally stops the process (non-zero exit) so its
    # supervisor restarts it, rather than running on with that destination silently idle.
    if not task.cancelled() and task.exception() is not None and not stop.is_set():
        log.error("stopping: %s failed: %r", task.get_name(), task.exception())
        stop.set()


async def _topics_ready(
    manifests: Sequence[Manifest], settings: DispatcherSettings, stop: asyncio.Event
) -> bool:
    """Ensure every topic exists, waiting for Kafka as long as it takes (or until ``stop``)."""
    for manifest in manifests:
        admin = AdminClient(admin_config(manifest.bootstrap_servers))
        for topic in (manifest.topic, manifest.dead_letter_topic):
            spec = TopicSpec(name=topic, partitions=settings.partitions)
            while True:
                try:
                    await asyncio.to_thread(ensure_topic, admin, spec, timeout=10.0)
                    break
                except TopicError as exc:
                    log.warning(
                        "waiting for kafka bootstrap=%s topic=%s error=%s",
                        manifest.bootstrap_servers,
                        topic,
                        exc,
                    )
                try:
                    await asyncio.wait_for(stop.wait(), timeout=settings.kafka_wait_interval)
                except TimeoutError:
                    continue
                return False
    return True
