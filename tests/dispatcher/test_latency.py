"""The latency histogram as Prometheus reads it: cumulative buckets, count and sum per
destination, under the name the dashboards know."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from dispatcher.latency import BOUNDS, LatencyHistogram


def scraped(histogram: LatencyHistogram) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(histogram)
    samples = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_each_destination_has_its_buckets_count_and_sum() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.001, 0.02, 0.02, 7.0, 99999.0):
        histogram.observe("hook", seconds)
    histogram.observe("other", 0.3)
    samples = scraped(histogram)
    assert samples['delivery_latency_seconds_bucket{destination="hook",le="0.005"}'] == 1
    assert samples['delivery_latency_seconds_bucket{destination="hook",le="0.025"}'] == 3
    assert samples['delivery_latency_seconds_bucket{destination="hook",le="10.0"}'] == 4
    assert samples['delivery_latency_seconds_bucket{destination="hook",le="+Inf"}'] == 5
    assert samples['delivery_latency_seconds_count{destination="hook"}'] == 5
    assert samples['delivery_latency_seconds_sum{destination="hook"}'] == 0.041 + 7 + 99999
    assert samples['delivery_latency_seconds_count{destination="other"}'] == 1


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1))
def test_a_bucket_counts_the_observations_at_or_below_its_bound(values: list[float]) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe("d", value)
    samples = scraped(histogram)
    for bound in BOUNDS:
        expected = sum(1 for v in values if v <= bound)
        assert (
            samples[f'delivery_latency_seconds_bucket{{destination="d",le="{bound!r}"}}']
            == expected
        )
