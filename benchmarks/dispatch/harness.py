"""The dispatch benchmark's surroundings: its sink, its topics and consumer groups, the
manifests it generates, and the processes it starts (bare clients and dispatchers), all
cleaned up on exit."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager, ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import click
import yaml

from benchmarks.dispatch import bare_client
from benchmarks.dispatch.events import preload
from benchmarks.dispatch.plan import BARE, DISPATCHER, PARTITIONS, Plan
from benchmarks.dispatch.runs import Run, measure
from benchmarks.dispatch.sink import SinkClient, sink
from benchmarks.kafka import Scratch
from benchmarks.measure import free_port
from benchmarks.processes import BIN, Child, started

__all__ = ["Bench", "http_destination"]


def http_destination(name: str, url: str, concurrency: int | None = None) -> dict[str, Any]:
    """A manifest entry; with ``concurrency``, the connection pool is made as large, since
    ``max_connections`` (default 100) would otherwise cap the concurrency measured."""
    entry: dict[str, Any] = {"name": name, "type": "http", "url": url}
    if concurrency is not None:
        entry |= {
            "concurrency": concurrency,
            "max_buffered": max(1000, 4 * concurrency),
            "max_connections": concurrency,
        }
    return entry


class Bench:
    """The benchmark's processes, temporary files and Kafka topics, cleaned up on exit."""

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.kafka = Scratch(plan.bootstrap)
        self._runs = 0
        self._exit = ExitStack()
        self._exit.enter_context(self.kafka)  # deleted last, after every process stopped
        self.sink: SinkClient = self._exit.enter_context(sink(workdir))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()

    def started(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> AbstractContextManager[Child]:
        """A process of this benchmark, talking to its broker, stopped on leaving the block."""
        return started(
            name,
            argv,
            self.workdir,
            {"KAFKA_BOOTSTRAP_SERVERS": self.plan.bootstrap, **(env or {})},
        )

    def fresh_topic(self, label: str, *, events: int, users: int) -> str:
        """A new topic with ``events`` events of ``users`` users in it."""
        topic = f"bench-dispatch.{self.run_id}.{label}"
        self.kafka.topic(topic, partitions=PARTITIONS)
        self.kafka.delete_later(topics=[f"{topic}.dead-letter"])  # the dispatcher makes it
        preload(self.plan.bootstrap, topic, events=events, users=users)
        return topic

    def bare(self, latency_ms: int, concurrency: int) -> Run:
        """The ceiling: a plain aiohttp client at ``concurrency`` against the same sink."""
        self.sink.reset()
        argv = bare_client.argv(
            self.sink.url(latency_ms),
            concurrency=concurrency,
            requests=self.plan.events,
            seconds=self.plan.window + 5,
        )
        with self.started(f"bare-c{concurrency}-l{latency_ms}", argv) as client:
            return self.measure(client, BARE, latency_ms, concurrency)

    def dispatcher(
        self,
        topic: str,
        latency_ms: int,
        concurrency: int,
        *,
        label: str = DISPATCHER,
        env: Mapping[str, str] | None = None,
        window: float | None = None,
    ) -> Run:
        """The dispatcher delivering ``topic`` to one http destination, from the start of the
        topic, in a fresh consumer group."""
        self._runs += 1
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower())  # Kafka names allow few characters
        name = f"{self._runs:02d}-{slug}-c{concurrency}-l{latency_ms}"
        manifest = self.manifest(
            name, topic, [http_destination("sink", self.sink.url(latency_ms), concurrency)]
        )
        self.sink.reset()
        port = free_port()
        argv = [*self.dispatcher_argv(manifest), "--metrics-port", str(port)]
        with self.started(name, argv, env) as client:
            client.metrics_url = f"http://127.0.0.1:{port}/metrics"
            return self.measure(client, label, latency_ms, concurrency, window=window)

    def measure(
        self,
        client: Child,
        label: str,
        latency_ms: int,
        concurrency: int,
        *,
        window: float | None = None,
    ) -> Run:
        """``measure`` a run with the plan's sizes, saying how it went on stderr."""
        click.echo(f"  {label} latency={latency_ms}ms concurrency={concurrency} ...", err=True)
        run = measure(
            client,
            self.sink,
            label=label,
            latency_ms=latency_ms,
            concurrency=concurrency,
            deliveries=self.plan.events,
            window=self.plan.window if window is None else window,
        )
        click.echo(
            f"    {run.deliveries} in {run.seconds:.2f}s = {run.rate:,.0f}/s,"
            f" cpu {run.percent(run.used.cpu):.0f}% (loop {run.percent(run.used.loop_cpu):.0f}%,"
            f" waiting {run.percent(run.used.loop_wait):.0f}%),"
            f" sink cpu {run.percent(run.sink_used.cpu):.0f}% [{run.ended_by}]",
            err=True,
        )
        return run

    def manifest(self, name: str, topic: str, destinations: list[dict[str, Any]]) -> Path:
        """A manifest file delivering ``topic`` to ``destinations``, groups named for ``name``."""
        group_prefix = f"bench-dispatch.{self.run_id}.{name}"
        self.kafka.delete_later(
            groups=[f"{group_prefix}.{entry['name']}" for entry in destinations]
        )
        document = {
            "topic": topic,
            "group_prefix": group_prefix,
            "start_from": "earliest",
            "kafka": {"bootstrap_servers": self.plan.bootstrap},
            "defaults": {
                "timeout": "5s",
                "retry": {"max_retries": 2, "initial_backoff": "50ms", "max_backoff": "200ms"},
            },
            "destinations": destinations,
        }
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    @staticmethod
    def dispatcher_argv(manifest: Path) -> list[str]:
        return [
            *(str(BIN / "dispatcher"), "--manifest", str(manifest)),
            *("--log-level", "WARNING", "--drain-timeout", "2"),
        ]
