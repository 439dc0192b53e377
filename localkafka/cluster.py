"""A 3-node KRaft cluster on loopback: three combined broker+controller nodes, one static
quorum, one cluster id, each node with its own ports and data folder.

It exists to measure what a single broker cannot show: that an acknowledged event survives the
loss of a broker. Internal topics are replicated 3 times, and a topic created without saying
otherwise gets replication factor 3 and ``min.insync.replicas=2``, as in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from localkafka.broker import NativeBroker, process_alive, random_cluster_id
from localkafka.exceptions import BrokerError
from localkafka.readiness import broker_answers

__all__ = ["Cluster", "NodeStatus"]

NODES = 3

_CLUSTER_SETTINGS = {
    "default.replication.factor": str(NODES),
    "min.insync.replicas": "2",
}


def _default_state() -> Path:
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(root) / "event-delivery" / "kafka-cluster"


@dataclass(frozen=True)
class NodeStatus:
    """What ``cluster-status`` says about one node."""

    node_id: int
    pid: int | None
    port: int
    answers: bool

    def line(self) -> str:
        answers = "yes" if self.answers else "no"
        return f"node={self.node_id} pid={self.pid or '-'} port={self.port} answers={answers}"


@dataclass(frozen=True)
class Cluster:
    """Where the three nodes keep their files and which ports they listen on.

    Node ``n`` (1-3) listens for clients on ``first_port + n - 1`` and for the quorum on
    ``first_controller_port + n - 1``; its files are in ``state_dir / f"node-{n}"``.
    """

    first_port: int = 19092
    """Client port of node 1 (nodes 2 and 3 take the next two)."""
    first_controller_port: int = 19192
    """Controller (quorum) port of node 1 (nodes 2 and 3 take the next two)."""
    state_dir: Path = field(default_factory=_default_state)
    """The nodes' folders and the cluster id."""
    heap: str = "384m"
    """JVM heap of each node; three nodes share a 2-core machine."""
    extra_config: Mapping[str, str] = field(default_factory=dict)
    """More ``server.properties`` settings for every node."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Cluster:
        """Ports from ``KAFKA_CLUSTER_PORT`` / ``KAFKA_CLUSTER_CONTROLLER_PORT`` (first node's),
        heap from ``KAFKA_CLUSTER_HEAP``; the state folder under ``XDG_STATE_HOME``."""
        port = int(environ.get("KAFKA_CLUSTER_PORT", "19092"))
        controller = int(environ.get("KAFKA_CLUSTER_CONTROLLER_PORT", str(port + 100)))
        return cls(
            first_port=port,
            first_controller_port=controller,
            heap=environ.get("KAFKA_CLUSTER_HEAP", "384m"),
        )

    @property
    def bootstrap(self) -> str:
        """Every node's client address, comma-separated."""
        return ",".join(node.bootstrap for node in self.nodes())

    def nodes(self) -> list[NativeBroker]:
        voters = ",".join(
            f"{n}@127.0.0.1:{self.first_controller_port + n - 1}" for n in range(1, NODES + 1)
        )
        cluster_id = self._cluster_id()
        return [
            NativeBroker(
                port=self.first_port + n - 1,
                controller_port=self.first_controller_port + n - 1,
                state_dir=self.state_dir / f"node-{n}",
                heap=self.heap,
                node_id=n,
                quorum_voters=voters,
                cluster_id=cluster_id,
                internal_replication=NODES,
                extra_config={**_CLUSTER_SETTINGS, **self.extra_config},
            )
            for n in range(1, NODES + 1)
        ]

    def node(self, node_id: int) -> NativeBroker:
        return self.nodes()[node_id - 1]

    # -- the front door ----------------------------------------------------------------

    def up(self, *, timeout: float = 180.0) -> list[int]:
        """Start the nodes that are not running; wait until all three answer and the cluster
        knows all three brokers. Returns the ids of the nodes started."""
        started = []
        for node in self.nodes():
            if node.running_pid() is None:
                node.start()
                started.append(node.node_id)
        if not self.wait_until_whole(timeout=timeout):
            logs = "\n".join(
                f"--- node {n.node_id} ({n.log_file}):\n{n.tail_log(15)}" for n in self.nodes()
            )
            raise BrokerError(f"the cluster did not answer within {timeout:.0f}s\n{logs}")
        return started

    def status(self) -> list[NodeStatus]:
        return [
            NodeStatus(node.node_id, node.running_pid(), node.port, broker_answers(node.bootstrap))
            for node in self.nodes()
        ]

    def down(self, *, timeout: float = 30.0) -> list[int]:
        """Stop the running nodes (all at once: one by one, the last would wait on a quorum
        that is gone); SIGKILL what is left after ``timeout``. Data stays. Returns their pids."""
        pids = [pid for node in self.nodes() if (pid := node.running_pid()) is not None]
        for pid in pids:
            _signal(pid, signal.SIGCONT)  # a node stopped with SIGSTOP cannot act on SIGTERM
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
            time.sleep(0.1)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        while any(process_alive(pid) for pid in pids):
            time.sleep(0.05)
        for node in self.nodes():
            node.pid_file.unlink(missing_ok=True)
        return pids

    # -- for fault tests ---------------------------------------------------------------

    def wait_until_whole(self, *, timeout: float) -> bool:
        """True once every node answers and the cluster's metadata lists all three brokers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(broker_answers(n.bootstrap) for n in self.nodes()) and self._brokers() == NODES:
                return True
            time.sleep(0.5)
        return False

    def signal_node(self, node_id: int, signum: int) -> int:
        """Send ``signum`` to a running node; returns its pid (``BrokerError`` if not running)."""
        pid = self.node(node_id).running_pid()
        if pid is None:
            raise BrokerError(f"node {node_id} is not running")
        os.kill(pid, signum)
        if signum == signal.SIGKILL:
            while process_alive(pid):
                time.sleep(0.05)
        return pid

    # -- internals ---------------------------------------------------------------------

    def _cluster_id(self) -> str:
        id_file = self.state_dir / "cluster-id"
        if not id_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            id_file.write_text(random_cluster_id())
        return id_file.read_text().strip()

    def _brokers(self) -> int:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            return len(admin.list_topics(timeout=2).brokers)
        except Exception:
            return 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
