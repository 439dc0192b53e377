"""The delivery latency histogram, kept as plain bucket counts and read at scrape time.

Every delivered event records one latency, so this sits on the hot path: an OpenTelemetry
histogram's ``record`` (attributes hashed and cleaned, an aggregation locked) cost about
19 µs per event, a tenth of a delivery's CPU. Here an observation is a bisect and two
additions on the event loop; ``prometheus_client`` reads a snapshot when ``/metrics`` is
scraped (``LATENCIES`` is registered by the CLI), under the name the OpenTelemetry histogram
had: ``delivery_latency_seconds`` with a ``destination`` label.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import REGISTRY, Collector

__all__ = ["BOUNDS", "LATENCIES", "LatencyHistogram", "serve_latencies"]

BOUNDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    1800.0, 3600.0, 21600.0, 86400.0,
)  # fmt: skip
"""Upper bounds in seconds, from ingest's receive time to the destination's acceptance: a
few milliseconds when all is well, up to a day for events that waited out an outage."""


class LatencyHistogram(Collector):
    """Latencies per destination (see the module docstring)."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}
        """Per destination: observations in each bucket (not cumulative), +Inf last."""
        self._sums: dict[str, float] = {}

    def observe(self, destination: str, seconds: float) -> None:
        counts = self._counts.get(destination)
        if counts is None:
            counts = self._counts[destination] = [0] * (len(BOUNDS) + 1)
            self._sums[destination] = 0.0
        counts[bisect_left(BOUNDS, seconds)] += 1
        self._sums[destination] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        # On the scraping thread: copies taken under the GIL, so each destination's buckets
        # and count agree (its sum may lag by an observation or two).
        family = HistogramMetricFamily(
            "delivery_latency_seconds",
            "From ingest's receive time to the destination's acceptance.",
            labels=["destination"],
            unit="seconds",
        )
        for destination, counts in list(self._counts.items()):
            snapshot = list(counts)
            cumulative, buckets = 0, []
            for bound, count in zip((*BOUNDS, float("inf")), snapshot, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([destination], buckets, self._sums.get(destination, 0.0))
        yield family


LATENCIES = LatencyHistogram()
"""The process's histogram (one per process, like its metrics endpoint)."""


def serve_latencies() -> None:
    """Make ``prometheus_client``'s registry (what ``/metrics`` serves) read ``LATENCIES``;
    calling it again changes nothing."""
    global _registered  # noqa: PLW0603 - one registry per process, registered once
    if not _registered:
        REGISTRY.register(LATENCIES)
        _registered = True


_registered = False
