"""The dispatcher's metrics (OpenTelemetry instruments, exported to Prometheus by the CLI).

Without ``configure_metrics()`` the API's no-op meter makes every call here nearly free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

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
        self._in_flight_readers: dict[str, Callable[[], int]] = {}
        meter.create_observable_gauge(
            "delivery_in_flight", callbacks=[self._observe_in_flight], unit="{event}",
            description="Events being delivered (including their retries) by destination.",
        )  # fmt: skip
        self._latency = meter.create_histogram(
            "delivery_latency", unit="s",
            description="From ingest's receive time to the destination's acceptance.",
        )  # fmt: skip
        self._label_cache: dict[tuple[str, str, str], dict[str, str]] = {}
        self._lag_lock = threading.Lock()
        self._lag: dict[tuple[str, int], int] = {}
        meter.create_observable_gauge(
            "consumer_lag", callbacks=[self._observe_lag], unit="{event}",
            description="Events on the topic not yet committed, by destination and partition.",
        )  # fmt: skip

    def attempted(self, destination: str, outcome: str) -> None:
        self._attempts.add(1, self._labels(destination, "outcome", outcome))

    def retried(self, destination: str) -> None:
        self._retries.add(1, {"destination": destination})

    def watch_in_flight(self, destination: str, read: Callable[[], int]) -> None:
        """Report ``read()`` as ``destination``'s events in flight, read at scrape time (so
        the hot path pays nothing for it)."""
        self._in_flight_readers[destination] = read

    def finished(self, destination: str, result: str, latency: float | None) -> None:
        self._events.add(1, self._labels(destination, "result", result))
        if latency is not None:
            self._latency.record(latency, {"destination": destination})

    def _labels(self, destination: str, key: str, value: str) -> dict[str, str]:
        # The same few label sets recur for every event: build each once.
        labels = self._label_cache.get((destination, key, value))
        if labels is None:
            labels = {"destination": destination, key: value}
            self._label_cache[destination, key, value] = labels
        return labels

    def set_lag(self, destination: str, lags: dict[int, int]) -> None:
        """Replace ``destination``'s per-partition lag (called from the event loop)."""
        with self._lag_lock:
            for key in [k for k in self._lag if k[0] == destination]:
                del self._lag[key]
            for partition, lag in lags.items():
                self._lag[destination, partition] = lag

    def _observe_in_flight(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(read(), {"destination": destination})
            for destination, read in list(self._in_flight_readers.items())
        ]

    def _observe_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        # Runs on the scraping thread: read a snapshot, never the worker's own state.
        with self._lag_lock:
            snapshot = list(self._lag.items())
        return [
            Observation(lag, {"destination": d, "partition": str(p)}) for (d, p), lag in snapshot
        ]
