"""How large a destination's buffer must be (issue 14): ``max_buffered`` from small to large
at the top concurrency against the 20 ms sink, where a starved pipeline shows as fewer
deliveries in flight than slots. One bare client run first is the ceiling of them all."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.plan import BUFFER_SIZES, DISPATCHER, RATIO_LATENCY_MS
from benchmarks.dispatch.runs import Run
from benchmarks.report import markdown_table

__all__ = ["BufferComparison", "compare_buffers", "section"]


@dataclass(frozen=True, slots=True)
class BufferComparison:
    bare: Run
    runs: dict[int, Run]
    """By ``max_buffered``."""


def compare_buffers(bench: Bench, topic: str) -> BufferComparison:
    concurrency = bench.plan.top_concurrency
    bare = bench.bare(RATIO_LATENCY_MS, concurrency)
    runs = {
        size: bench.dispatcher(
            topic,
            RATIO_LATENCY_MS,
            concurrency,
            label=f"{DISPATCHER} buffer {size}",
            max_buffered=size,
        )
        for size in BUFFER_SIZES
    }
    return BufferComparison(bare, runs)


def section(comparison: BufferComparison) -> str:
    """The report's "Buffer size" section."""
    bare = comparison.bare
    concurrency = bare.concurrency
    header = [
        *("max_buffered", "deliveries/s", "x bare", "mean in flight", "in flight / concurrency"),
        *("CPU µs/delivery", "peak RSS MiB", "ended by"),
    ]
    rows = [
        [
            f"{size:,}",
            f"{run.rate:,.0f}",
            f"{run.rate / bare.rate:.2f}" if bare.rate else "n/a",
            "-" if run.in_flight is None else f"{run.in_flight:.0f}",
            "-" if run.in_flight is None else f"{run.in_flight / concurrency:.2f}",
            f"{run.per_delivery_us(run.used.cpu):,.0f}",
            f"{run.peak_rss / (1 << 20):.0f}",
            run.ended_by,
        ]
        for size, run in sorted(comparison.runs.items())
    ]
    return "\n".join(
        [
            "## Buffer size",
            "",
            f"One destination at concurrency {concurrency} against the {RATIO_LATENCY_MS} ms"
            f" sink, each `max_buffered` in a run of its own; the bare client's rate in the"
            f" same benchmark was {bare.rate:,.0f}/s. A buffer too small for the users it must"
            " hold to fill every slot shows as 'in flight / concurrency' below 0.9.",
            "",
            markdown_table(header, rows),
        ]
    )
