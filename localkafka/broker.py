"""A single-node Apache Kafka broker (KRaft, combined broker+controller) run from Maven's jars.

Jars are resolved once by Maven from ``pom.xml`` beside this file and cached outside the work
tree; the broker's data, log and pid file live in a state folder so a restart (even after
SIGKILL) finds its data again.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from localkafka.exceptions import BrokerError, MissingPrerequisiteError

__all__ = ["NativeBroker", "kafka_version", "process_alive", "random_cluster_id"]

POM = Path(__file__).with_name("pom.xml")
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def kafka_version() -> str:
    """The Kafka version pinned in ``pom.xml`` (the only place it is written)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:  # pragma: no cover - the pom ships with the package
        raise BrokerError(f"{POM}: no <kafka.version> property")
    return match.group(1)


def _default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "event-delivery"


def _default_state() -> Path:
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(root) / "event-delivery" / "kafka"


@dataclass(frozen=True)
class NativeBroker:
    """Where one native broker keeps its files and which ports it listens on."""

    port: int = 9092
    """Client (PLAINTEXT) port on 127.0.0.1."""
    controller_port: int = 9093
    """KRaft controller port on 127.0.0.1."""
    state_dir: Path = field(default_factory=_default_state)
    """Data, configuration, log file and pid file of this broker."""
    cache_dir: Path = field(default_factory=_default_cache)
    """Where Maven's resolved jars are kept between runs (shared by all brokers)."""
    heap: str = "512m"
    """JVM heap; a single test broker is comfortable in 256-512 MiB."""
    node_id: int = 1
    """This node's id in the KRaft quorum (and as a broker)."""
    quorum_voters: str = ""
    """``controller.quorum.voters`` (``id@host:port,...``); empty: this node alone."""
    cluster_id: str | None = None
    """The id to format storage with; None: one generated once and kept in ``state_dir``.
    Every node of one cluster must be formatted with the same id."""
    internal_replication: int = 1
    """Replication factor of Kafka's internal topics (consumer offsets, transactions)."""
    extra_config: dict[str, str] = field(default_factory=dict)
    """More ``server.properties`` settings, written last (so they override the defaults)."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / f"kafka-{kafka_version()}" / "libs"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    # -- jars --------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Resolve the broker's jars with Maven unless a complete copy is cached."""
        done = self.libs_dir / ".complete"
        if done.exists():
            return self.libs_dir
        _require_java()
        if shutil.which("mvn") is None:
            raise MissingPrerequisiteError(
                "Maven (mvn) is needed once to download Kafka's jars from Maven Central. "
                "Install it with `apt-get install maven`, or install a Docker engine."
            )
        self.libs_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs_dir}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(
                f"Maven could not resolve Kafka {kafka_version()}:\n{result.stdout[-2000:]}"
            )
        done.touch()
        return self.libs_dir

    # -- process -----------------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The pid of this broker if its pid file names a live Kafka process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if MAIN_CLASS.encode() in cmdline else None

    def foreground_command(self) -> list[str]:
        """Prepare jars, configuration and storage; return the command that runs the broker."""
        libs = self.ensure_jars()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        classpath = f"{libs}/*"
        self._format_storage(classpath, props)
        return [*self._java(classpath), MAIN_CLASS, str(props)]

    def start(self) -> subprocess.Popen[bytes]:
        """Start the broker in the background, in its own session, logging to ``log_file``."""
        command = self.foreground_command()
        log = self.log_file.open("ab")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def stop(self, *, timeout: float = 30.0) -> bool:
        """Stop the broker named by the pid file: SIGTERM, then SIGKILL past ``timeout``."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.1)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"

    # -- internals ---------------------------------------------------------------------

    def _java(self, classpath: str) -> list[str]:
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(_LOG4J)
        return [
            _require_java(),
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
        ]

    def _write_config(self) -> Path:
        props = self.state_dir / "server.properties"
        voters = self.quorum_voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        replication = str(self.internal_replication)
        min_isr = str(min(2, self.internal_replication))
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            # Tests join many groups; the default 3 s delay would be paid on every join.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            **self.extra_config,
        }
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return props

    def _format_storage(self, classpath: str, props: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        id_file = self.state_dir / "cluster-id"
        if self.cluster_id is not None:
            id_file.write_text(self.cluster_id)
        elif not id_file.exists():
            id_file.write_text(random_cluster_id())
        result = subprocess.run(
            [
                *self._java(classpath),
                STORAGE_TOOL,
                "format",
                "--ignore-formatted",
                "-t",
                id_file.read_text().strip(),
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def random_cluster_id() -> str:
    """A new KRaft cluster id."""
    # Kafka's Uuid.toString: URL-safe base64 of 16 random bytes without padding.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (ours, reaped here, or another's waiting for its
    parent) does not count, though it still answers ``kill(pid, 0)``."""
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise MissingPrerequisiteError(
            "Kafka needs Java 17 or newer (or a Docker engine). "
            "Install it with `apt-get install openjdk-17-jre-headless`."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < 17:
        raise MissingPrerequisiteError(
            f"Kafka 4 needs Java 17 or newer; `{java} -version` says: "
            f"{(out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else '?'}"
        )
    return java


# KAFKA_LOG_LEVEL (default INFO) quietens the broker where its log shares a terminal with others
# (`just up`); the "Kafka Server started" line is kept at any level.
_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${env:KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = ${env:KAFKA_LOG_LEVEL:-INFO}
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""
