"""The dispatcher's metrics (OpenTelemetry instruments, exported to Prometheus by the CLI).

Counts are kept in plain integers on the event loop and read by observable instruments when
metrics are scraped, so a delivery pays a dict increment, not an SDK call, per count; the
latency histogram is plain bucket counts too (``dispatcher/latency.py``). Without
``configure_metrics()`` nothing is exported.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from dispatcher.latency import LATENCIES

__all__ = ["DeliveryMetrics"]


class DeliveryMetrics:
    """Instruments shared by every destination of a process; labelled by destination."""

    def __init__(self) -> None:
        meter = metrics.get_meter("dispatcher")
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._events: Counter[tuple[str, str]] = Counter()
        self._retries: Counter[str] = Counter()
        self._in_flight_readers: dict[str, Callable[[], int]] = {}
        self._lag_lock = threading.Lock()
        self._lag: dict[str, dict[int, int]] = {}
        meter.create_observable_counter(
            "delivery_attempts", unit="{attempt}",
            callbacks=[lambda _: _observe(self._attempts, "outcome")],
            description="Delivery attempts by destination and outcome.",
        )  # fmt: skip
        meter.create_observable_counter(
            "delivery_events", unit="{event}",
            callbacks=[lambda _: _observe(self._events, "result")],
            description="Events finished by destination and result (delivered, parked, ...).",
        )  # fmt: skip
        meter.create_observable_counter(
            "delivery_retries", unit="{retry}",
            callbacks=[lambda _: _per_destination(self._retries)],
            description="Retries scheduled by destination.",
        )  # fmt: skip
        meter.create_observable_gauge(
            "delivery_in_flight", callbacks=[self._observe_in_flight], unit="{event}",
            description="Events being delivered (including their retries) by destination.",
        )  # fmt: skip
        meter.create_observable_gauge(
            "consumer_lag", callbacks=[self._observe_lag], unit="{event}",
            description="Events on the topic not yet finished, by destination and partition.",
        )  # fmt: skip
        self._transitions: Counter[tuple[str, str]] = Counter()
        self._lost: Counter[str] = Counter()
        self._stopped: Counter[str] = Counter()
        self._gauges: dict[str, dict[str, Callable[[], float]]] = {
            "breaker_state": {}, "parked_users": {}, "parked_events": {},
            "oldest_unfinished_age": {}, "retention_used": {},
        }  # fmt: skip
        meter.create_observable_counter(
            "breaker_transitions", unit="{transition}",
            callbacks=[lambda _: _observe(self._transitions, "state")],
            description="Circuit-breaker state changes by destination and new state.",
        )  # fmt: skip
        meter.create_observable_counter(
            "events_lost_to_retention", unit="{event}",
            callbacks=[lambda _: _per_destination(self._lost)],
            description="Events deleted by retention before this destination's group read them.",
        )  # fmt: skip
        meter.create_observable_counter(
            "destination_stopped", unit="{stop}",
            callbacks=[lambda _: _per_destination(self._stopped)],
            description="Destinations stopped because Kafka refused a dead letter or park record.",
        )  # fmt: skip
        descriptions = {
            "breaker_state": (
                "{state}",
                "Breaker state by destination: 0 closed, 1 half-open, 2 open.",
            ),
            "parked_users": ("{user}", "Users parked at a destination (partitions owned here)."),
            "parked_events": ("{event}", "Events held in a destination's park for replay."),
            "oldest_unfinished_age": ("s", "Age of the oldest unfinished event fetched."),
            "retention_used": ("1", "Oldest unfinished age as a share of the topic's retention."),
        }
        for gauge, (unit, text) in descriptions.items():
            meter.create_observable_gauge(
                gauge, unit=unit, description=text,
                callbacks=[self._gauge_callback(gauge)],
            )  # fmt: skip

    def attempted(self, destination: str, outcome: str) -> None:
        self._attempts[destination, outcome] += 1

    def retried(self, destination: str) -> None:
        self._retries[destination] += 1

    def finished(self, destination: str, result: str, latency: float | None) -> None:
        self._events[destination, result] += 1
        if latency is not None:
            LATENCIES.observe(destination, latency)

    def transition(self, destination: str, state: str) -> None:
        self._transitions[destination, state] += 1

    def lost_to_retention(self, destination: str, events: int) -> None:
        self._lost[destination] += events

    def stopped(self, destination: str) -> None:
        self._stopped[destination] += 1

    def watch_tasks(self, read: Callable[[], int]) -> None:
        """Report ``read()`` as the process's asyncio tasks (a leak shows as growth)."""
        meter = metrics.get_meter("dispatcher")
        meter.create_observable_gauge(
            "event_loop_tasks", unit="{task}",
            callbacks=[lambda _: [Observation(read())]],
            description="asyncio tasks alive in the dispatcher's event loop.",
        )  # fmt: skip

    def watch(self, gauge: str, destination: str, read: Callable[[], float]) -> None:
        """Report ``read()`` as ``gauge`` of ``destination``, read at scrape time."""
        self._gauges[gauge][destination] = read

    def _gauge_callback(self, gauge: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(read(), {"destination": destination})
                for destination, read in list(self._gauges[gauge].items())
            ]

        return observe

    def watch_in_flight(self, destination: str, read: Callable[[], int]) -> None:
        """Report ``read()`` as ``destination``'s events in flight, read at scrape time."""
        self._in_flight_readers[destination] = read

    def set_lag(self, destination: str, lags: dict[int, int]) -> None:
        """Replace ``destination``'s per-partition lag (called from the event loop)."""
        with self._lag_lock:
            self._lag[destination] = lags

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
            Observation(lag, {"destination": destination, "partition": str(partition)})
            for destination, lags in snapshot
            for partition, lag in lags.items()
        ]


def _per_destination(counts: Counter[str]) -> list[Observation]:
    return [Observation(n, {"destination": d}) for d, n in list(counts.items())]


def _observe(counts: Counter[tuple[str, str]], label: str) -> list[Observation]:
    # list() copies atomically under the GIL, so the loop may go on counting meanwhile.
    return [Observation(n, {"destination": d, label: v}) for (d, v), n in list(counts.items())]
