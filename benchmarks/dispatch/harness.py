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

from benchmarks.dispatch import bare_client, with_client
from benchmarks.dispatch.events import preload
from benchmarks.dispatch.plan import ATTEMPT_TIMEOUT, BARE, DISPATCHER, PARTITIONS, Plan
from benchmarks.dispatch.runs import InFlight, Run, measure
from benchmarks.dispatch.sink import SinkClient, sink
from benchmarks.dispatch.supervised import supervised_argv
from benchmarks.kafka import Scratch, local_broker_pid
from benchmarks.measure import ProcessWatch, free_port, port_is_free
from benchmarks.processes import BIN, Child, started

__all__ = ["Bench", "free_ports", "http_destination"]


def http_destination(name: str, url: str, concurrency: int | None = None) -> dict[str, Any]:
    """A manifest entry; with ``concurrency``, the connection pool is made as large, since
    ``max_connections`` (default 100) would otherwise cap the concurrency measured. Everything
    else (the buffer above all) is the manifest's default: defaults that starve the pipeline
    should show here."""
    entry: dict[str, Any] = {"name": name, "type": "http", "url": url}
    if concurrency is not None:
        entry |= {"concurrency": concurrency, "max_connections": concurrency}
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
        broker_pid = local_broker_pid(plan.bootstrap)
        self.broker = ProcessWatch(broker_pid) if broker_pid else None
        """The local broker, whose CPU is reported beside the clients' (it shares the cores)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()

    def started(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        *,
        tree: bool = False,
    ) -> AbstractContextManager[Child]:
        """A process of this benchmark, talking to its broker, stopped on leaving the block
        (with ``tree``, watched with its children)."""
        return started(
            name,
            argv,
            self.workdir,
            {"KAFKA_BOOTSTRAP_SERVERS": self.plan.bootstrap, **(env or {})},
            tree=tree,
        )

    def fresh_topic(self, label: str, *, events: int, users: int) -> str:
        """A new topic with ``events`` events of ``users`` users in it."""
        topic = f"bench-dispatch.{self.run_id}.{label}"
        self.kafka.topic(topic, partitions=PARTITIONS)
        self.kafka.delete_later(topics=[f"{topic}.dead-letter"])  # the dispatcher makes it
        preload(self.plan.bootstrap, topic, events=events, users=users)
        return topic

    def bare(
        self,
        latency_ms: int,
        concurrency: int,
        *,
        label: str = BARE,
        http_client: str = bare_client.AIOHTTP,
        http2: bool = False,
        window: float | None = None,
    ) -> Run:
        """The ceiling: a plain HTTP client (aiohttp unless ``http_client`` says otherwise) at
        ``concurrency`` against the same sink."""
        self.sink.reset()
        argv = bare_client.argv(
            self.sink.url(latency_ms),
            concurrency=concurrency,
            requests=self.plan.events,
            seconds=(self.plan.window if window is None else window) + 5,
            client=http_client,
            http2=http2,
        )
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower())
        with self.started(f"{slug}-c{concurrency}-l{latency_ms}", argv) as process:
            return self.measure(process, label, latency_ms, concurrency, window=window)

    def dispatcher(
        self,
        topic: str,
        latency_ms: int,
        concurrency: int,
        *,
        label: str = DISPATCHER,
        env: Mapping[str, str] | None = None,
        window: float | None = None,
        processes: int = 1,
        max_buffered: int | None = None,
        http_client: str | None = None,
        http2: bool = False,
        read_in_flight: bool = True,
    ) -> Run:
        """The dispatcher delivering ``topic`` to one http destination, from the start of the
        topic, in a fresh consumer group; ``processes`` > 1 runs that many under one
        supervisor (``dispatcher --processes``), measured together; ``max_buffered`` replaces
        the plan's. ``http_client`` names the http destination's HTTP client (run through
        ``with_client``, ``http2`` for pyreqwest's HTTP/2); ``None`` is the plain
        ``dispatcher`` command. Without ``read_in_flight`` the run leaves the dispatcher's
        in-flight gauge unread (and its CPU figures free of the reads' cost)."""
        self._runs += 1
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower())  # Kafka names allow few characters
        name = f"{self._runs:02d}-{slug}-c{concurrency}-l{latency_ms}"
        manifest = self.manifest(
            name, topic, [http_destination("sink", self.sink.url(latency_ms), concurrency)],
            max_buffered=max_buffered or self.plan.max_buffered,
        )  # fmt: skip
        self.sink.reset()
        port = free_ports(processes)
        options = self.dispatcher_options(manifest)
        if http_client is not None:
            assert processes == 1, "the clients are compared in one process"
            argv = with_client.argv(
                [*options, "--metrics-port", str(port)],
                client=http_client,
                http2=http2,
                attempt_timeout=ATTEMPT_TIMEOUT,
            )
        elif processes == 1:
            argv = [str(BIN / "dispatcher"), *options, "--metrics-port", str(port)]
        else:
            argv = supervised_argv(options, processes, port)
        with self.started(name, argv, env, tree=processes > 1) as client:
            if read_in_flight:
                client.metrics_urls = [
                    f"http://127.0.0.1:{port + i}/metrics" for i in range(processes)
                ]
            return self.measure(
                client, label, latency_ms, concurrency, window=window, processes=processes
            )

    def measure(
        self,
        client: Child,
        label: str,
        latency_ms: int,
        concurrency: int,
        *,
        window: float | None = None,
        processes: int = 1,
    ) -> Run:
        """``measure`` a run with the plan's sizes, saying how it went on stderr; the client
        runs ``processes`` processes of ``concurrency`` slots each."""
        click.echo(f"  {label} latency={latency_ms}ms concurrency={concurrency} ...", err=True)
        run = measure(
            client,
            self.sink,
            label=label,
            latency_ms=latency_ms,
            concurrency=concurrency,
            deliveries=self.plan.events,
            window=self.plan.window if window is None else window,
            in_flight=InFlight.for_load(
                concurrency * processes, events=self.plan.events, users=self.plan.users
            ),
            warmup=self.plan.warmup,
            broker=self.broker,
        )
        click.echo(
            f"    {run.deliveries} in {run.seconds:.2f}s = {run.rate:,.0f}/s,"
            f" cpu {run.percent(run.used.cpu):.0f}% (loop {run.percent(run.used.loop_cpu):.0f}%,"
            f" waiting {run.percent(run.used.loop_wait):.0f}%),"
            f" sink cpu {run.percent(run.sink_used.cpu):.0f}%,"
            f" in flight {'-' if run.in_flight is None else f'{run.in_flight:.0f}'},"
            f" machine {100 * run.machine_busy:.0f}% busy [{run.ended_by}]",
            err=True,
        )
        return run

    def manifest(
        self,
        name: str,
        topic: str,
        destinations: list[dict[str, Any]],
        *,
        max_buffered: int | None = None,
    ) -> Path:
        """A manifest file delivering ``topic`` to ``destinations``, groups named for ``name``
        (``max_buffered``: theirs, else the manifest's default)."""
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
                "timeout": f"{ATTEMPT_TIMEOUT:g}s",
                "retry": {"max_retries": 2, "initial_backoff": "50ms", "max_backoff": "200ms"},
            }
            | ({} if max_buffered is None else {"max_buffered": max_buffered}),
            "destinations": destinations,
        }
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    @staticmethod
    def dispatcher_options(manifest: Path) -> list[str]:
        return ["--manifest", str(manifest), "--log-level", "WARNING", "--drain-timeout", "2"]

    @classmethod
    def dispatcher_argv(cls, manifest: Path) -> list[str]:
        return [str(BIN / "dispatcher"), *cls.dispatcher_options(manifest)]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports nobody listens on right now."""
    while True:
        first = free_port()
        if all(port_is_free(first + i) for i in range(1, count)):
            return first
