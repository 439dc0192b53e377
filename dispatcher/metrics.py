"""The dispatcher's metrics (OpenTelemetry instruments, exported to Prometheus by the CLI).

Without ``configure_metrics()`` the API's no-op meter makes every call here nearly free.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["DeliveryMetrics"]


class DeliveryMetrics:
    """Instruments shared by every destination of a process; labelled by destination."""

    def __init__(self) -> None:
        meter = metrics.get_meter("dispatcher")
        self._attempts = meter.create_counter(
            "delivery_attempts", unit="{attempt}",
            description="Delivery attempts by destination and outcome.",
        )  # fmt: skip
        self._events = meter.create_counter(
            "delivery_events", unit="{event}",
            description="Events finished by destination and result (delivered, dead_lettered).",
        )  # fmt: skip
        self._retries = meter.create_counter(
            "delivery_retries", unit="{retry}", description="Retries scheduled by destination."
        )
        self._in_flight = meter.create_up_down_counter(
            "delivery_in_flight", unit="{event}",
            description="Events being delivered (including their retries) by destination.",
        )  # fmt: skip
        self._latency = meter.create_histogram(
            "delivery_latency", unit="s",
            description="From ingest's receive time to the destination's acceptance.",
        )  # fmt: skip
        self._lag_lock = threading.Lock()
        self._lag: dict[tuple[str, int], int] = {}
        meter.create_observable_gauge(
            "consumer_lag", callbacks=[self._observe_lag], unit="{event}",
            description="Events on the topic not yet committed, by destination and partition.",
        )  # fmt: skip

    def attempted(self, destination: str, outcome: str) -> None:
        self._attempts.add(1, {"destination": destination, "outcome": outcome})

    def retried(self, destination: str) -> None:
        self._retries.add(1, {"destination": destination})

    def started(self, destination: str) -> None:
        self._in_flight.add(1, {"destination": destination})

    def stopped(self, destination: str) -> None:
        """An event left flight: finished, or abandoned at shutdown or revocation."""
        self._in_flight.add(-1, {"destination": destination})

    def finished(self, destination: str, result: str, latency: float | None) -> None:
        self._events.add(1, {"destination": destination, "result": result})
        if latency is not None:
            self._latency.record(latency, {"destination": destination})

    def set_lag(self, destination: str, lags: dict[int, int]) -> None:
        """Replace ``destination``'s per-partition lag (called from the event loop)."""
        with self._lag_lock:
            for key in [k for k in self._lag if k[0] == destination]:
                del self._lag[key]
            for partition, lag in lags.items():
                self._lag[destination, partition] = lag

    def _observe_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        # Runs on the scraping thread: read a snapshot, never the worker's own state.
        with self._lag_lock:
            snapshot = list(self._lag.items())
        return [
            Observation(lag, {"destination": d, "partition": str(p)}) for (d, p), lag in snapshot
        ]
