"""Waiting until a broker really serves clients (its port opens well before that)."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

__all__ = ["broker_answers", "wait_until_ready"]


def broker_answers(bootstrap: str, *, timeout: float = 2.0) -> bool:
    """True if an admin client can list the cluster's topics within ``timeout`` seconds."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return True


def wait_until_ready(
    bootstrap: str, *, timeout: float = 90.0, still_starting: Callable[[], bool] = lambda: True
) -> bool:
    """Poll until the broker answers, ``still_starting()`` turns false, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker_answers(bootstrap):
            return True
        if not still_starting():
            return False
        time.sleep(0.25)
    return False
