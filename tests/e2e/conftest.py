"""End-to-end fixtures: real ingest and dispatcher processes, a real broker, a loopback sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Message

from tests.support.http_sink import HttpSink
from tests.support.processes import Service, start_dispatcher, start_ingest, write_manifest
from tests.support.topics import read_records


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


@dataclass
class Stack:
    """One test's system: its own topic, group prefix, ingest and dispatchers."""

    bootstrap: str
    topic: str
    group_prefix: str
    workdir: Path
    partitions: int = 6
    services: list[Service] = field(default_factory=list)
    ingest: Service | None = None

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}.dead-letter"

    def start_ingest(self, *, env: dict[str, str] | None = None) -> Service:
        self.ingest = start_ingest(
            self.bootstrap, self.topic, self.workdir, partitions=self.partitions, env=env
        )
        self.services.append(self.ingest)
        return self.ingest

    def manifest(self, name: str, destinations: list[dict[str, Any]], **defaults: Any) -> Path:
        base: dict[str, Any] = {
            "timeout": "1s",
            "retry": {"max_retries": 2, "initial_backoff": "20ms", "max_backoff": "100ms"},
        }
        base.update(defaults)
        return write_manifest(
            self.workdir / f"{name}.yaml",
            bootstrap=self.bootstrap,
            topic=self.topic,
            group_prefix=self.group_prefix,
            destinations=destinations,
            defaults=base,
        )

    def start_dispatcher(
        self, *manifests: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> Service:
        service = start_dispatcher(list(manifests), self.workdir, env=env, extra_args=args)
        self.services.append(service)
        return service

    def send(self, user_id: str, payload: str, client: httpx.Client | None = None) -> str:
        assert self.ingest is not None
        own = client is None
        http = client or httpx.Client()
        try:
            response = http.put(
                f"{self.ingest.url}/events", json={"user_id": user_id, "payload": payload}
            )
        finally:
            if own:
                http.close()
        assert response.status_code == 202, response.text
        event_id: str = response.json()["id"]
        return event_id

    def send_per_user(
        self, users: int, per_user: int, *, first_user: int = 0
    ) -> dict[str, list[str]]:
        """Users at once (``user-<first_user>`` on), each sending its events one after
        another; returns ids per user."""

        def one_user(user: int) -> tuple[str, list[str]]:
            name = f"user-{user}"
            with httpx.Client() as client:
                return name, [self.send(name, f"{name}#{i}", client) for i in range(per_user)]

        with ThreadPoolExecutor(max_workers=min(users, 20)) as pool:
            return dict(pool.map(one_user, range(first_user, first_user + users)))

    def send_batches(self, users: int, per_user: int) -> dict[str, list[str]]:
        """Pre-load events through ``POST /events/batch``; returns ids per user in order."""
        assert self.ingest is not None
        events = [
            {"user_id": f"user-{u}", "payload": f"user-{u}#{i}"}
            for i in range(per_user)
            for u in range(users)
        ]
        sent: dict[str, list[str]] = {f"user-{u}": [] for u in range(users)}
        with httpx.Client(timeout=30) as client:
            for start in range(0, len(events), 1000):
                chunk = events[start : start + 1000]
                response = client.post(f"{self.ingest.url}/events/batch", json=chunk)
                assert response.status_code == 202, response.text
                for event, result in zip(chunk, response.json()["results"], strict=True):
                    assert result["status"] == "accepted", result
                    sent[event["user_id"]].append(result["id"])
        return sent

    def read_topic(self, topic: str, expected: int, timeout: float = 30.0) -> list[Message]:
        """Every record of ``topic`` (from the start) once ``expected`` have arrived."""
        return read_records(self.bootstrap, topic, expected, within=timeout)


@pytest.fixture
def stack(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[Stack]:
    system = Stack(
        bootstrap=kafka_bootstrap,
        topic=unique_name("events"),
        group_prefix=unique_name("test"),
        workdir=tmp_path,
    )
    yield system
    for service in reversed(system.services):
        if service.process.poll() is None:
            service.kill()
