"""The ingest benchmark's results as markdown: ingest beside its two ceilings, CPU per request,
one-at-a-time latency, and what tracing costs."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.ingest.ceilings import PAYLOAD_BYTES, USERS
from benchmarks.ingest.load import Load, percentile_ms
from benchmarks.ingest.targets import HTTP_CEILING, INGEST, INGEST_TRACED, INGEST_WORKERS, WORKERS
from benchmarks.report import markdown_table
from benchmarks.span_counter import SpanCounts
from benchmarks.tracing import TRACING_OFF, TRACING_ON, Cost, cost_table

__all__ = ["GOAL_RATIO", "Results", "render"]

GOAL_RATIO = 0.6
GOAL_SINGLE_P50_MS = 10.0


@dataclass(frozen=True, slots=True)
class Results:
    machine: str
    concurrency: int
    window: float
    loads: dict[str, Load]
    """Per target, its measured windows summed."""
    singles: dict[str, list[float]]
    """Per target, one-at-a-time latencies."""
    kafka_rate: float
    kafka_failed: int
    spans: SpanCounts | None
    """What traced ingest exported, over its whole life (``None`` when not measured)."""
    traced_accepted: float | None
    """Events traced ingest accepted over its whole life, by its own count."""


def render(results: Results) -> str:
    """The results as markdown."""
    sections = [_header(results), _ceilings(results)]
    if INGEST_TRACED in results.loads:
        sections.append(_tracing_cost(results))
    return "\n\n".join(sections) + "\n"


def _header(results: Results) -> str:
    return f"""# ingest benchmark

Written by `python -m benchmarks.bench_ingest` (`just bench-ingest`).

Machine: {results.machine}.

`PUT /events` with a {PAYLOAD_BYTES}-byte payload over {USERS} users; {results.concurrency}
requests in flight from one aiohttp client process; {results.window:g} s measured per target,
in turns alternating between the targets (so background load hits all alike), after a warm-up.
Each server is one uvicorn worker (uvloop, httptools) but the one with `--workers`. Client,
servers and broker share the machine. CPU columns are CPU-seconds per second of the target's
windows (all threads of the process, and of its worker processes)."""


def _ceilings(results: Results) -> str:
    loads, singles = results.loads, results.singles
    http, ingest = loads[HTTP_CEILING], loads[INGEST]
    lower = min(http.rate, results.kafka_rate)
    ratio = ingest.rate / lower

    def row(name: str, load: Load) -> list[str]:
        errors = ", ".join(f"{s}: {n}" for s, n in sorted(load.other.items())) or "0"
        return [
            *(name, f"{load.rate:,.0f}", f"{load.percentile(50):.1f}"),
            *(f"{load.percentile(99):.1f}", errors, load.per_second(load.server_cpu)),
            *(load.per_second(load.client_cpu), load.per_second(load.broker_cpu)),
            f"{load.rate / lower:.0%}",
        ]

    kafka_rate, kafka_share = f"{results.kafka_rate:,.0f}", f"{results.kafka_rate / lower:.0%}"
    kafka = ["Kafka ceiling: bare producer loop, same producer settings", kafka_rate, "", ""]
    kafka += [str(results.kafka_failed), "", "", "", kafka_share]
    rows = [
        row("HTTP ceiling: same app, producer acknowledges at once", http),
        kafka,
        row("**ingest** (acks=all from the local broker)", ingest),
    ]
    if INGEST_WORKERS in loads:
        rows.append(
            row(f"ingest, {WORKERS} workers (`--workers {WORKERS}`)", loads[INGEST_WORKERS])
        )
    if INGEST_TRACED in loads:
        rows.append(
            row("ingest, tracing on (every trace sampled and exported)", loads[INGEST_TRACED])
        )
    header = [
        *("target", "req/s", "p50 ms", "p99 ms", "non-202", "server CPU", "client CPU"),
        *("broker CPU", "vs lower ceiling"),
    ]

    def cpu_per_request(load: Load) -> str:
        parts = [("server", load.server_cpu), ("client", load.client_cpu)]
        if load.broker_cpu is not None:
            parts.append(("broker", load.broker_cpu))
        return " + ".join(f"{who} {load.per_request_us(cpu):.0f}" for who, cpu in parts)

    def single_ms(name: str, p: int) -> float:
        return percentile_ms(singles[name], p)

    verdict = "met" if ratio >= GOAL_RATIO else "not met"
    scaling = ""
    if INGEST_WORKERS in loads:
        scaling = (
            f"\n\n{WORKERS} workers / 1: **{loads[INGEST_WORKERS].rate / ingest.rate:.2f}x** the"
            " requests per second. The load client is one Python process on the same cores, and"
            " the broker a third user of them: when the client's CPU nears one core it, not"
            " ingest, bounds the rate."
        )
    single_verdict = "met" if single_ms(INGEST, 50) < GOAL_SINGLE_P50_MS else "not met"
    return f"""{markdown_table(header, rows, left=(0, 4))}

Ingest reaches **{ratio:.0%}** of the lower ceiling (goal {GOAL_RATIO:.0%}: {verdict}).{scaling}

CPU per accepted request, in µs: HTTP ceiling {cpu_per_request(http)}; ingest
{cpu_per_request(ingest)}. With both cores shared by client, server, broker and whatever else
runs, these (not the network) bound the rates.

Single client, one request at a time ({len(singles[INGEST])} requests): ingest p50
**{single_ms(INGEST, 50):.1f} ms** (goal < {GOAL_SINGLE_P50_MS:g} ms: {single_verdict}), p99
{single_ms(INGEST, 99):.1f} ms; HTTP ceiling p50 {single_ms(HTTP_CEILING, 50):.1f} ms."""


def _tracing_cost(results: Results) -> str:
    off, on = results.loads[INGEST], results.loads[INGEST_TRACED]
    spans = results.spans.spans if results.spans is not None else 0
    per_event = spans / results.traced_accepted if results.traced_accepted else 0.0
    costs = [
        Cost("req/s", off.rate, on.rate),
        Cost("p50 ms", off.percentile(50), on.percentile(50), decimals=1),
        Cost("p99 ms", off.percentile(99), on.percentile(99), decimals=1),
        Cost(
            "server CPU µs/request",
            off.per_request_us(off.server_cpu),
            on.per_request_us(on.server_cpu),
        ),
        Cost(
            "single client p50 ms",
            percentile_ms(results.singles[INGEST], 50),
            percentile_ms(results.singles[INGEST_TRACED], 50),
            decimals=1,
        ),
    ]
    return f"""## Tracing cost

The same ingest command, started twice and loaded in the same turns at the same concurrency:
{TRACING_OFF} is no `OTEL_*` variables (no SDK, no spans built); {TRACING_ON} is
`OTEL_TRACES_EXPORTER=otlp`, `OTEL_TRACES_SAMPLER=always_on`, exporting over OTLP/HTTP to a
span counter on loopback in a process of its own. Over its life (warm-up and single client
included) traced ingest accepted {results.traced_accepted or 0:,.0f} events and exported
{spans:,} spans: {per_event:.2f} per event (2 expected: the server span and the producer span;
fewer means the SDK's queue dropped some).

{cost_table(costs)}"""
