"""HTTP transport (issue 14): aiohttp, which the dispatcher uses, against the Rust-backed
pyreqwest, over HTTP/1.1 and HTTP/2 (h2c with prior knowledge against the Go sink), first as
bare clients, then inside the dispatcher (``benchmarks.dispatch.with_client``), against the
same sink, at the same latencies and concurrencies, in one run.

The figure that decides is deliveries per CPU-second (process CPU of all threads, pyreqwest's
Rust runtime thread included), pyreqwest over aiohttp, in the dispatcher: the rule is to adopt
pyreqwest at ``TRANSPORT_GOAL`` (1.3x) or more. At 20 ms the sink's latency bounds every
client's rate alike, so there only the CPU differs; at 0 ms the client's CPU bounds it. Each
pair of runs compared is measured back to back, their order alternating, so that a drift of
the shared machine's load does not favour one client."""

from __future__ import annotations

import importlib.metadata
import math
from dataclasses import dataclass
from datetime import timedelta

from benchmarks.dispatch.bare_client import AIOHTTP, PYREQWEST
from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.plan import (
    TRANSPORT_BARE_CONCURRENCIES,
    TRANSPORT_DISPATCHER_CONCURRENCIES,
    TRANSPORT_GOAL,
)
from benchmarks.dispatch.runs import Run
from benchmarks.report import markdown_table

__all__ = [
    "CLIENTS",
    "Client",
    "TransportComparison",
    "compare_transports",
    "per_cpu_second",
    "section",
    "speaks_h2c",
    "verdict",
]


@dataclass(frozen=True, slots=True)
class Client:
    """One way of sending the requests."""

    name: str
    library: str
    http2: bool = False


CLIENTS = (Client("aiohttp", AIOHTTP), Client("pyreqwest", PYREQWEST))
"""The clients compared over HTTP/1.1, the first the reference."""
HTTP2 = Client("pyreqwest h2c", PYREQWEST, http2=True)
BASE, CANDIDATE = CLIENTS


@dataclass(frozen=True, slots=True)
class TransportComparison:
    bare: dict[tuple[int, int, str], Run]
    """By (latency ms, concurrency, client name)."""
    dispatcher: dict[tuple[int, int, str], Run]
    http2: bool
    """Whether the sink spoke HTTP/2 (h2c), so that the HTTP/2 runs could be made."""
    pyreqwest: str
    """pyreqwest's version."""


def compare_transports(bench: Bench, topic: str) -> TransportComparison:
    """Every client at every latency and concurrency, bare then in the dispatcher."""
    plan = bench.plan
    bare_levels = plan.concurrencies if plan.concurrencies_given else TRANSPORT_BARE_CONCURRENCIES
    ours_levels = (
        plan.concurrencies if plan.concurrencies_given else TRANSPORT_DISPATCHER_CONCURRENCIES
    )
    http2 = speaks_h2c(f"{bench.sink.base_url}/count")
    clients = [*CLIENTS, *([HTTP2] if http2 else [])]
    bare: dict[tuple[int, int, str], Run] = {}
    dispatcher: dict[tuple[int, int, str], Run] = {}
    turn = 0
    for latency in plan.latencies:
        for concurrency in bare_levels:
            for client in _alternating(clients, turn):
                bare[latency, concurrency, client.name] = bench.bare(
                    latency,
                    concurrency,
                    label=f"bare {client.name}",
                    http_client=client.library,
                    http2=client.http2,
                )
            turn += 1
    for latency in plan.latencies:
        for concurrency in ours_levels:
            for client in _alternating(clients, turn):
                dispatcher[latency, concurrency, client.name] = bench.dispatcher(
                    topic,
                    latency,
                    concurrency,
                    label=f"dispatcher {client.name}",
                    http_client=client.library,
                    http2=client.http2,
                )
            turn += 1
    return TransportComparison(bare, dispatcher, http2, importlib.metadata.version("pyreqwest"))


def speaks_h2c(url: str) -> bool:
    """Whether the server at ``url`` answers HTTP/2 over cleartext with prior knowledge."""
    from pyreqwest.client import SyncClientBuilder  # noqa: PLC0415 - a bench dependency
    from pyreqwest.exceptions import RequestError  # noqa: PLC0415

    client = SyncClientBuilder().http2_prior_knowledge().timeout(timedelta(seconds=5)).build()
    try:
        with client:
            response = client.get(url).build().send()
    except RequestError:
        return False
    return response.version == "HTTP/2.0" and response.status == 200


def _alternating(clients: list[Client], turn: int) -> list[Client]:
    """The clients in order on even turns, reversed on odd ones."""
    return clients if turn % 2 == 0 else clients[::-1]


def per_cpu_second(run: Run) -> float | None:
    """Deliveries (or requests) per second of process CPU, all threads, in the measured
    window."""
    return run.wall_deliveries / run.used.cpu if run.used.cpu > 0 else None


def _over_base(runs: dict[tuple[int, int, str], Run], key: tuple[int, int, str]) -> float | None:
    """Per CPU-second of the run at ``key`` over aiohttp's at the same latency and
    concurrency."""
    latency, concurrency, _ = key
    base = runs.get((latency, concurrency, BASE.name))
    ours, theirs = per_cpu_second(runs[key]), base and per_cpu_second(base)
    return ours / theirs if ours and theirs else None


def verdict(comparison: TransportComparison) -> tuple[list[float], bool]:
    """pyreqwest's HTTP/1.1 ratios in the dispatcher, and whether every one meets the goal."""
    ratios = [
        ratio
        for key in comparison.dispatcher
        if key[2] == CANDIDATE.name and (ratio := _over_base(comparison.dispatcher, key))
    ]
    return ratios, bool(ratios) and min(ratios) >= TRANSPORT_GOAL


def _sink_share(runs: dict[tuple[int, int, str], Run]) -> float | None:
    """The highest share of a client's CPU that the sink used beside it, over ``runs``."""
    shares = [run.sink_used.cpu / run.used.cpu for run in runs.values() if run.used.cpu > 0]
    return max(shares) if shares else None


def _shown(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rows(runs: dict[tuple[int, int, str], Run], *, ours: bool) -> list[list[str]]:
    order = [client.name for client in (*CLIENTS, HTTP2)]
    rows = []
    for key, run in sorted(runs.items(), key=lambda item: (*item[0][:2], order.index(item[0][2]))):
        latency, concurrency, client = key
        base = runs.get((latency, concurrency, BASE.name))
        rate_ratio = run.rate / base.rate if base and base.rate else None
        rows.append(
            [
                str(latency),
                str(concurrency),
                client,
                f"{run.rate:,.0f}",
                "-" if client == BASE.name else _shown(rate_ratio, ".2f"),
                *([_shown(run.in_flight, ".0f")] if ours else []),
                f"{run.percent(run.used.cpu):.0f}",
                f"{run.per_delivery_us(run.used.cpu):,.0f}",
                _shown(per_cpu_second(run), ",.0f"),
                "-" if client == BASE.name else _shown(_over_base(runs, key), ".2f"),
                f"{run.percent(run.sink_used.cpu):.0f}",
                f"{run.per_delivery_us(run.sink_used.cpu):,.0f}",
                f"{100 * run.machine_busy:.0f}",
                *([f"{run.peak_rss / (1 << 20):.0f}"] if ours else []),
                str(run.threads),
                run.ended_by,
            ]
        )
    return rows


def _header(*, ours: bool) -> list[str]:
    what = "deliveries" if ours else "requests"
    one = "delivery" if ours else "request"
    return [
        *("sink latency ms", "concurrency", "client", f"{what}/s", "x aiohttp"),
        *(["mean in flight"] if ours else []),
        *("CPU %", f"CPU µs/{one}", f"{what} per CPU-second", "x aiohttp per CPU-second"),
        *("sink CPU %", "sink CPU µs/request", "machine busy %"),
        *(["peak RSS MiB"] if ours else []),
        *("threads", "ended by"),
    ]


def section(comparison: TransportComparison) -> str:
    """The report's "HTTP transport" section."""
    ratios, met = verdict(comparison)
    if ratios:
        geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        decision = (
            f"pyreqwest (HTTP/1.1) over aiohttp in the dispatcher, deliveries per CPU-second:"
            f" **{min(ratios):.2f}x to {max(ratios):.2f}x** (geometric mean {geometric:.2f}x)"
            f" over {len(ratios)} settings; the rule asks >= {TRANSPORT_GOAL:g}x at every"
            " setting:" + (" **met**." if met else " **not met**.")
        )
    else:
        decision = "No dispatcher run had a measured window: nothing to decide on."
    sink = _sink_share(comparison.dispatcher), _sink_share(comparison.bare)
    sink_text = (
        f"The sink's CPU is beside each run: at most {sink[0]:.0%} of the dispatcher's in"
        " any of its runs, so the sink does not bound them; beside the bare clients, up to"
        f" {sink[1]:.0%} of theirs. Where 'machine busy' nears 100%, the two cores shared by"
        " client, sink and broker bound a bare client's rate: compare those by CPU per request."
        if sink[0] is not None and sink[1] is not None
        else "The sink's CPU is beside each run."
    )
    http2 = (
        "`pyreqwest h2c` is HTTP/2 over cleartext with prior knowledge (the Go sink serves it"
        " beside HTTP/1.1), all requests multiplexed over one connection."
        if comparison.http2
        else "HTTP/2 was not measured: this sink does not speak h2c (the Go sink built with"
        " Go 1.24 or later does)."
    )
    return "\n".join(
        [
            "## HTTP transport: aiohttp versus pyreqwest",
            "",
            f"The same body to the same sink, first from bare clients (`bare_client --client`),"
            f" then from the dispatcher with its http destination on each client"
            f" (`with_client`; pyreqwest {comparison.pyreqwest}, the same requests, signing,"
            " status rules, pool size and no redirects through `WebhookRequests`). CPU is the"
            " whole process's, all threads (pyreqwest's Rust runtime thread too), over the"
            " requests or deliveries in the measured window; 'x aiohttp' is over aiohttp's at"
            " the same latency and concurrency, the pair measured back to back. "
            + sink_text
            + " "
            + http2,
            "",
            "### Bare clients",
            "",
            markdown_table(_header(ours=False), _rows(comparison.bare, ours=False), left=(2, -1)),
            "",
            "### The dispatcher",
            "",
            markdown_table(
                _header(ours=True), _rows(comparison.dispatcher, ours=True), left=(2, -1)
            ),
            "",
            decision,
        ]
    )
