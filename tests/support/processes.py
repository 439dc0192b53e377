"""Running ingest and dispatchers as real subprocesses, the way an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.kafka_fixtures import free_port

__all__ = ["Service", "start_dispatcher", "start_ingest", "write_manifest"]

BIN = Path(sys.executable).parent


@dataclass
class Service:
    """A running subprocess with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"{self.name} did not exit within {timeout}s:\n{self.log()[-3000:]}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no chance to drain or commit."""
        self.process.kill()
        self.process.wait(10)

    def wait_for_log(self, text: str, timeout: float = 30.0, *, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return True
            if self.process.poll() is not None:
                return self.log().count(text) >= count
            time.sleep(0.05)
        return False


def _spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    return Service(name, process, log_path)


def start_dispatcher(
    manifests: list[Path],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> Service:
    argv = [str(BIN / "dispatcher")]
    for manifest in manifests:
        argv += ["--manifest", str(manifest)]
    return _spawn("dispatcher", argv + (extra_args or []), log_dir, env)


def start_ingest(
    bootstrap: str,
    topic: str,
    log_dir: Path,
    *,
    partitions: int = 12,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    ready_timeout: float = 60.0,
) -> Service:
    port = free_port()
    argv = [
        str(BIN / "ingest"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        str(partitions),
        *(extra_args or []),
    ]
    service = _spawn("ingest", argv, log_dir, env)
    service.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"ingest exited early:\n{service.log()}")
        try:
            with urllib.request.urlopen(f"{service.url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return service
        except OSError:
            pass
        time.sleep(0.1)
    service.stop()
    raise AssertionError(f"ingest not ready within {ready_timeout}s:\n{service.log()}")


def write_manifest(
    path: Path,
    *,
    bootstrap: str,
    topic: str,
    group_prefix: str,
    destinations: list[dict[str, Any]],
    defaults: dict[str, Any] | None = None,
) -> Path:
    document = {
        "topic": topic,
        "group_prefix": group_prefix,
        "start_from": "earliest",
        "kafka": {"bootstrap_servers": bootstrap},
        "defaults": defaults
        or {
            "timeout": "1s",
            "retry": {"max_retries": 2, "initial_backoff": "20ms", "max_backoff": "100ms"},
        },
        "destinations": destinations,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
