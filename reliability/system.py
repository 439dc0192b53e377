"""One scenario's system: its own topics on the cluster (replication factor 3,
``min.insync.replicas`` 2), an ingest process and dispatcher processes run the way an operator
runs them, their logs in the run's folder, and everything removed again at the end."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config, consumer_config
from eventlog.record import decode
from eventlog.topics import TopicSpec, ensure_topic
from localkafka.cluster import Cluster

__all__ = ["Service", "System"]

BIN = Path(sys.executable).parent
"""Where the project's console scripts (``ingest``, ``dispatcher``) are installed."""
PARTITIONS = 12


@dataclass
class Service:
    """A process of the system under test, restartable with the same command line."""

    metrics_url: str | None = field(default=None, init=False)
    """Where a dispatcher serves its Prometheus metrics."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL past ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class System:
    """Topics, ingest and dispatchers of one scenario run."""

    cluster: Cluster
    workdir: Path
    name: str
    destinations: list[dict[str, Any]]
    """Manifest entries; their ``url`` points at the sink."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    ingest: Service | None = None
    dispatchers: list[Service] = field(default_factory=list)
    ingest_port: int = 0

    @property
    def topic(self) -> str:
        return f"reliability.{self.name}.{self.run_id}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}.dead-letter"

    @property
    def group_prefix(self) -> str:
        return f"reliability.{self.name}.{self.run_id}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def manifest_path(self) -> Path:
        return self.workdir / f"{self.name}.yaml"

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        admin = AdminClient(admin_config(self.cluster.bootstrap))
        # Created before either service starts, so both find it as this run means it; the
        # dispatcher creates its own topics (dead letters, parking) as its manifest says.
        spec = TopicSpec(
            name=self.topic, partitions=PARTITIONS, replication_factor=3, min_insync_replicas=2
        )
        ensure_topic(admin, spec)
        self._write_manifest()
        return self

    def __exit__(self, *_: object) -> None:
        for service in [*self.dispatchers, *([self.ingest] if self.ingest else [])]:
            service.stop(timeout=15)
        if os.environ.get("RELIABILITY_KEEP_TOPICS"):
            return
        # Best effort: the topics are the run's own, and a broker may be half down.
        with contextlib.suppress(Exception):
            admin = AdminClient(admin_config(self.cluster.bootstrap))
            ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.topic)]
            for future in admin.delete_topics(ours, operation_timeout=30).values():
                future.result(timeout=30)

    # -- ingest ------------------------------------------------------------------------

    def start_ingest(self, *, ready_timeout: float = 60.0) -> Service:
        """Start ingest (again, on the same port) and wait until it is ready."""
        if self.ingest is None:
            self.ingest_port = _free_port()
            self.ingest = Service(
                "ingest",
                [
                    str(BIN / "ingest"),
                    "--port", str(self.ingest_port),
                    "--bootstrap-servers", self.cluster.bootstrap,
                    "--topic", self.topic,
                    "--partitions", str(PARTITIONS),
                    "--replication-factor", "3",
                    "--min-insync-replicas", "2",
                    "--ack-timeout", "5",
                    "--retry-after", "1",
                ],
                self.workdir / "ingest.log",
            )  # fmt: skip
        self.ingest.start()
        self._wait_ready(self.ingest, ready_timeout)
        return self.ingest

    def _wait_ready(self, service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.running():
                raise RuntimeError(f"ingest exited:\n{service.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.ingest_url}/readyz", timeout=2) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ingest not ready within {timeout:.0f}s:\n{service.log_tail()}")

    # -- dispatchers -------------------------------------------------------------------

    def start_dispatcher(self) -> Service:
        """Start one more dispatcher process with the run's manifest."""
        with socket.socket() as probe:  # a free port for its /metrics
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        service = Service(
            f"dispatcher-{len(self.dispatchers) + 1}",
            [str(BIN / "dispatcher"), "--manifest", str(self.manifest_path),
             "--metrics-port", str(port)],
            self.workdir / f"dispatcher-{len(self.dispatchers) + 1}.log",
        )  # fmt: skip
        service.metrics_url = f"http://127.0.0.1:{port}/metrics"
        self.dispatchers.append(service.start())
        return service

    def check_alive(self) -> None:
        """``RuntimeError`` with its log if a service exited on its own (not killed by a
        fault, which restarts it at once)."""
        for service in [*self.dispatchers, *([self.ingest] if self.ingest else [])]:
            code = None if service.process is None else service.process.poll()
            if code not in (None, -9):
                errors = [line for line in service.log_tail().splitlines() if " ERROR " in line]
                last = errors[-1] if errors else "no ERROR line"
                raise RuntimeError(
                    f"{service.name} exited with code {code}; last error: {last}\n"
                    f"{service.log_tail()}"
                )

    def stored_event_ids(self, *, within: float = 60.0) -> set[str] | None:
        """The ids of every event on the topic now (read to each partition's end), or None if
        the topic could not be read to its end within ``within`` seconds."""
        reader = Consumer(
            consumer_config(self.cluster.bootstrap, f"reader-{uuid.uuid4().hex}", log_level=0)
        )
        ids: set[str] = set()
        try:
            meta = reader.list_topics(self.topic, timeout=10).topics[self.topic]
            ends = {
                p: reader.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                for p in meta.partitions
            }
            left = {p for p, end in ends.items() if end > 0}
            reader.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in left])
            deadline = time.monotonic() + within
            while left and time.monotonic() < deadline:
                for message in reader.consume(500, timeout=0.5):
                    if message.error() is not None:
                        continue
                    ids.add(decode(message.key(), message.value(), message.headers()).id)
                    if (message.offset() or 0) + 1 >= ends[message.partition() or 0]:
                        left.discard(message.partition() or 0)
        except Exception:  # a broker may be down: not known
            return None
        finally:
            reader.close()
        return None if left else ids

    def stopped_destinations(self) -> list[str]:
        """The dispatchers' "destination stopped" ERROR lines (without time and level): a
        destination that gave up delivers nothing more until restarted."""
        found: dict[str, None] = {}
        for service in self.dispatchers:
            for line in service.log_path.read_text(errors="replace").splitlines():
                if " ERROR " in line and "destination stopped" in line:
                    found[line.split(" ERROR ", 1)[1].strip()[:200]] = None
        return list(found)

    def lag(self, *, only: Collection[str] | None = None) -> int | None:
        """Events of the topic the destinations (those named in ``only``, else all) have not
        committed yet, summed; None if it cannot be known now."""
        probe = Consumer(
            consumer_config(self.cluster.bootstrap, f"probe-{uuid.uuid4().hex}", log_level=0)
        )
        try:
            meta = probe.list_topics(self.topic, timeout=5).topics[self.topic]
            parts = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
            ends = [probe.get_watermark_offsets(p, timeout=5)[1] for p in parts]
            total = 0
            for entry in self.destinations:
                if only is not None and entry["name"] not in only:
                    continue
                group = Consumer(
                    consumer_config(
                        self.cluster.bootstrap, f"{self.group_prefix}.{entry['name']}", log_level=0
                    )
                )
                try:
                    committed = group.committed(parts, timeout=5)
                finally:
                    group.close()
                total += sum(end - max(c.offset, 0) for c, end in zip(committed, ends, strict=True))
        except Exception:  # a broker may be down: not known yet
            return None
        finally:
            probe.close()
        return total

    def _write_manifest(self) -> None:
        document = {
            "topic": self.topic,
            "dead_letter_topic": self.dead_letter_topic,
            "group_prefix": self.group_prefix,
            "start_from": "earliest",
            "kafka": {
                "bootstrap_servers": self.cluster.bootstrap,
                "replication_factor": 3,
                "min_insync_replicas": 2,
            },
            "defaults": {
                "timeout": "2s",
                # Never give up on an event during a scenario: a dead letter would be a loss
                # for the sink. Faults are in Kafka here, not in the destinations.
                "retry": {"max_retries": 1000, "initial_backoff": "50ms", "max_backoff": "1s"},
            },
            "destinations": self.destinations,
        }
        self.manifest_path.write_text(yaml.safe_dump(document, sort_keys=False))


def _free_port() -> int:
    """A free loopback port below the ephemeral range (the kernel never hands those to
    outgoing connections, so it stays free until ingest binds it, and across its restarts)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10_000, low), 200):
        if port in range(19_000, 19_300):  # the cluster's default ports
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port")


def _child_env() -> dict[str, str]:
    """This environment, without what would point a child elsewhere than this run says:
    ``KAFKA_BOOTSTRAP_SERVERS`` overrides a manifest's brokers, ``OTEL_*`` turns tracing on."""
    return {
        k: v
        for k, v in os.environ.items()
        if k != "KAFKA_BOOTSTRAP_SERVERS" and not k.startswith("OTEL_")
    }
