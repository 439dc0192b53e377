"""Tracing on versus off in the dispatcher (issue 7): one destination at concurrency 64 with the
0 ms sink, where the per-delivery cost of spans shows most. Runs alternate off-on, on-off, so
that a drift in the machine's background load hits both alike; the span counter's tally says
how many spans each delivery produced."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.plan import TRACING_CONCURRENCY
from benchmarks.dispatch.runs import Run
from benchmarks.span_counter import SpanCounts, span_counter
from benchmarks.tracing import TRACING_OFF, TRACING_ON, Cost, cost_table, tracing_env

__all__ = ["TracingComparison", "compare_tracing", "section"]


@dataclass(frozen=True, slots=True)
class Totals:
    """Runs of one mode, taken together."""

    runs: list[Run]

    @property
    def rate(self) -> float:
        seconds = sum(run.seconds for run in self.runs)
        return sum(run.counted for run in self.runs) / seconds if seconds else 0.0

    def per_delivery_us(self, loop: bool) -> float:
        used = sum(run.used.loop_cpu if loop else run.used.cpu for run in self.runs)
        delivered = sum(run.wall_deliveries for run in self.runs)
        return 1e6 * used / delivered if delivered else 0.0


@dataclass(frozen=True, slots=True)
class TracingComparison:
    off: Totals
    on: Totals
    spans: SpanCounts
    """What the span counter received from the traced dispatchers, until each had stopped."""
    traced_deliveries: int
    """What the sink received from them, until each had stopped."""


def compare_tracing(bench: Bench, topic: str) -> TracingComparison:
    """``plan.tracing_rounds`` pairs of runs, each over a share of the window, a fresh
    consumer group each."""
    rounds = bench.plan.tracing_rounds
    window = bench.plan.window / rounds
    off: list[Run] = []
    on: list[Run] = []
    spans, delivered = SpanCounts(0, 0), 0
    with span_counter(bench.workdir) as counter:
        for round_number in range(rounds):
            for traced in (False, True) if round_number % 2 == 0 else (True, False):
                if not traced:
                    label = f"dispatcher, {TRACING_OFF}"
                    off.append(
                        bench.dispatcher(topic, 0, TRACING_CONCURRENCY, label=label, window=window)
                    )
                    continue
                before = counter.counts()
                on.append(
                    bench.dispatcher(
                        topic,
                        0,
                        TRACING_CONCURRENCY,
                        label=f"dispatcher, {TRACING_ON}",
                        env=tracing_env(counter.base_url),
                        window=window,
                    )
                )
                spans += counter.counts() - before  # the dispatcher has stopped and flushed
                delivered += bench.sink.stats().count
    return TracingComparison(Totals(off), Totals(on), spans, delivered)


def section(comparison: TracingComparison) -> str:
    """The report's "Tracing cost" section."""
    off, on = comparison.off, comparison.on
    runs = len(on.runs)
    spans_per = (
        comparison.spans.spans / comparison.traced_deliveries
        if comparison.traced_deliveries
        else 0.0
    )
    costs = [
        Cost("deliveries/s", off.rate, on.rate),
        Cost("loop CPU µs/delivery", off.per_delivery_us(loop=True), on.per_delivery_us(loop=True)),
        Cost(
            "CPU µs/delivery (all threads)",
            off.per_delivery_us(loop=False),
            on.per_delivery_us(loop=False),
        ),
    ]
    return "\n".join(
        [
            "## Tracing cost",
            "",
            f"One http destination at concurrency {TRACING_CONCURRENCY}, 0 ms sink, the dispatcher"
            f" started {runs} times each way, alternating (off-on, on-off), a fresh consumer group"
            f" each time: {TRACING_OFF} is no `OTEL_*` variables (no SDK, no spans built);"
            f" {TRACING_ON} is `OTEL_TRACES_EXPORTER=otlp`, `OTEL_TRACES_SAMPLER=always_on`,"
            " exporting over OTLP/HTTP to a span counter on loopback in a process of its own."
            f" The traced runs exported {comparison.spans.spans:,} spans in"
            f" {comparison.spans.exports:,} batches for {comparison.traced_deliveries:,}"
            f" deliveries: {spans_per:.2f} spans per delivery (3 expected: process, attempt,"
            " commit; fewer means the SDK's queue dropped some).",
            "",
            cost_table(costs),
        ]
    )
