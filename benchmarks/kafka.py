"""The benchmarks' footprint on the shared broker: scratch topics and consumer groups that are
deleted again on the way out, and the local broker's process, whose CPU is worth reporting."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Self

from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config
from eventlog.kafka_security import environment_security
from eventlog.topics import TopicSpec, ensure_topic
from localkafka import NativeBroker

__all__ = ["Scratch", "local_broker_pid"]

DELETE_TIMEOUT = 15.0


class Scratch:
    """Topics and groups a benchmark creates, deleted when the block ends (waiting for the
    broker to confirm: an unsent request would die with the process, leaving them behind)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AdminClient(admin_config(bootstrap, security=environment_security()))
        self._topics: list[str] = []
        self._groups: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        futures: list[Any] = []
        if self._groups:
            futures += self._admin.delete_consumer_groups(self._groups, request_timeout=10).values()
        if self._topics:
            futures += self._admin.delete_topics(self._topics, operation_timeout=10).values()
        for future in futures:
            with suppress(Exception):  # a group that never committed does not exist: fine
                future.result(timeout=DELETE_TIMEOUT)

    def topic(self, name: str, *, partitions: int) -> str:
        """Create topic ``name`` (to be deleted later); returns its name."""
        self._topics.append(name)
        ensure_topic(self._admin, TopicSpec(name=name, partitions=partitions))
        return name

    def delete_later(self, *, topics: Sequence[str] = (), groups: Sequence[str] = ()) -> None:
        """Also delete these, which someone else (a service under test) creates."""
        self._topics += topics
        self._groups += groups


def local_broker_pid(bootstrap: str) -> int | None:
    """The pid of the native broker ``just kafka-up`` runs, if ``bootstrap`` is that broker."""
    broker = NativeBroker()
    return broker.running_pid() if broker.bootstrap == bootstrap else None
