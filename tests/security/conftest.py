"""A native broker of this package's own with a ``SASL_SSL`` listener (SCRAM-SHA-512 over TLS
with a throwaway CA), started once for the tests that need a broker which authenticates."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localkafka import NativeBroker
from localkafka.secure import SecureListener
from tests.kafka_fixtures import TEST_BROKER_SETTINGS, free_port, start_broker


@dataclass(frozen=True)
class SecureKafka:
    broker: NativeBroker
    listener: SecureListener

    @property
    def bootstrap(self) -> str:
        """The SASL_SSL listener's address."""
        return self.listener.bootstrap

    @property
    def plaintext_bootstrap(self) -> str:
        """The broker's PLAINTEXT listener, for the tests' own reading and checking."""
        return self.broker.bootstrap


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureKafka]:
    with tempfile.TemporaryDirectory(prefix="kafka-secure-") as state:
        listener = SecureListener(
            port=free_port(),
            directory=Path(state) / "tls",
            # unique, so that tests can grep every output for it
            password=f"scram-{uuid.uuid4().hex}",
        )
        port, controller_port = free_port(), free_port()
        broker = NativeBroker(
            port=port,
            controller_port=controller_port,
            state_dir=Path(state) / "broker",
            heap="384m",
            extra_config={
                **TEST_BROKER_SETTINGS,
                **listener.prepare(plaintext_port=port, controller_port=controller_port),
            },
        )
        start_broker(broker)
        try:
            listener.create_user(broker.bootstrap)
            yield SecureKafka(broker, listener)
        finally:
            broker.stop(timeout=20)
