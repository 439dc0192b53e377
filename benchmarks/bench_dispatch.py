"""Issues 6 and 14: how fast the dispatcher delivers, measured against what the machine allows.

Everything runs on loopback against the shared broker, each part in its own process so that none
shares a GIL with another:

* a **sink** (``benchmarks/sink/main.go``, compiled at run time into a cache directory; the
  aiohttp ``benchmarks.dispatch.sink`` if Go is missing) answers ``POST /latency/<ms>[/<tag>]``
  with 204 after ``ms`` milliseconds and counts what arrived; its CPU is reported beside ours;
* the **dispatcher**, run as ``dispatcher --manifest <generated> --log-level WARNING``, delivers
  events pre-loaded into a fresh topic to one http destination at each concurrency and sink
  latency, a fresh consumer group per run, from the earliest offset;
* the **ceiling**: a bare aiohttp client (``benchmarks.dispatch.bare_client``) POSTs to the same
  sink at the same latency and concurrency, with none of the dispatcher's work around each
  request, right before each dispatcher run;
* ``max_buffered`` from 1,000 to 20,000 at the top concurrency (``buffer_sizes``);
* ``--processes 1`` versus ``2`` on the 0 ms sink (``scaling``);
* one dispatcher process hosting many destinations (default settings), each delivering a small
  pre-loaded batch, then idling;
* the dispatcher at concurrency 64 with tracing off and on (issue 7), exporting to a span counter;
* one more dispatcher run under pyinstrument, to say what bounds it when it is CPU-bound;
* only when asked for (``--only transport``): aiohttp versus pyreqwest (issue 14), bare and in
  the dispatcher, written to ``dispatch-transport.md`` so as not to replace the full results.

The machine is small and shared, so absolute numbers are noisy: rates are reported next to the
bare client's, measured in the same run. A run is measured from a warm-up after its first arrival
at the sink (``--warmup``) until its event count or its time window, whichever comes first; its
rate is the arrivals in that window over the time to the last one. It is a benchmark, not a
test: nothing here judges the numbers, though the report says which goals of issue 14 were met.

    python -m benchmarks.bench_dispatch                  # full: under 10 minutes
    python -m benchmarks.bench_dispatch --quick          # smoke: tiny numbers
    python -m benchmarks.bench_dispatch --only processes # one scenario (repeatable)
    python -m benchmarks.bench_dispatch --only transport # aiohttp vs pyreqwest: 10 minutes
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks import options
from benchmarks.dispatch.buffer_sizes import compare_buffers
from benchmarks.dispatch.cpu_pairs import CpuPairs, measure_pairs
from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.many import many_destinations
from benchmarks.dispatch.plan import (
    DEFAULT_SCENARIOS,
    FULL,
    LATENCIES_MS,
    QUICK,
    SCENARIOS,
    Plan,
)
from benchmarks.dispatch.profile import profiled
from benchmarks.dispatch.report import Report, render
from benchmarks.dispatch.runs import Run
from benchmarks.dispatch.scaling import compare_processes
from benchmarks.dispatch.tracing_cost import compare_tracing
from benchmarks.dispatch.transport import compare_transports
from benchmarks.report import machine_facts, write_results

__all__ = ["main", "results_name", "run_benchmark"]

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def run_benchmark(plan: Plan) -> Report:
    """Every measurement of the plan, in one go, with one sink and one pre-loaded topic."""
    machine = machine_facts("dispatcher", "eventlog")
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, Bench(plan, Path(tmp)) as b:
        topic = ""
        if plan.scenarios - {"many"}:
            click.echo(f"pre-loading {plan.events} events of {plan.users} users ...", err=True)
            topic = b.fresh_topic("events", events=plan.events, users=plan.users)
        runs: list[Run] = []
        pairs: list[tuple[Run, Run]] = []
        if plan.measures("runs"):
            for latency in plan.latencies:
                for concurrency in plan.concurrencies:
                    # The ceiling is measured right before the run compared with it.
                    runs.append(b.bare(latency, concurrency))
                    runs.append(b.dispatcher(topic, latency, concurrency))
            if plan.cpu_pairs:
                click.echo(f"{plan.cpu_pairs} more pairs for the CPU ratio ...", err=True)
                pairs = measure_pairs(b, topic)
        buffers = None
        if plan.measures("buffer"):
            click.echo("buffer sizes ...", err=True)
            buffers = compare_buffers(b, topic)
        processes = None
        if plan.measures("processes"):
            click.echo("one process and several ...", err=True)
            processes = compare_processes(b, topic)
        many = None
        if plan.measures("many"):
            click.echo(f"{plan.destinations} destinations in one process ...", err=True)
            many = many_destinations(b)
        tracing = None
        if plan.measures("tracing"):
            click.echo("tracing off and on ...", err=True)
            tracing = compare_tracing(b, topic)
        profile = None
        if plan.measures("profile"):
            click.echo("profiling the dispatcher ...", err=True)
            profile = profiled(b, topic)
        transport = None
        if plan.measures("transport"):
            click.echo("aiohttp and pyreqwest ...", err=True)
            transport = compare_transports(b, topic)
        sink_kind = b.sink.kind
    return Report(
        plan, machine, sink_kind, runs, buffers, processes, many, tracing, profile, transport,
        CpuPairs.of(runs, pairs),
    )  # fmt: skip


def results_name(plan: Plan) -> str:
    """``dispatch.md``, or ``dispatch-transport.md`` for the transport comparison alone, which
    must not replace the full run's results."""
    return "dispatch-transport.md" if plan.scenarios == {"transport"} else "dispatch.md"


def _size_option(
    name: str, kind: click.ParamType[Any], what: str, *, flag: str = "", **more: Any
) -> _Decorator:
    """``--<name>``, defaulting to the full or quick plan's size (``None`` until chosen)."""

    def shown(value: object) -> str:
        return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)

    full, quick = shown(getattr(FULL, name)), shown(getattr(QUICK, name))
    return click.option(
        flag or f"--{name}", name, type=kind, help=f"{what} [{full}; --quick: {quick}]", **more
    )


@click.command()
@click.option("--quick", is_flag=True, help="Tiny numbers: a smoke run of the whole harness.")
@_size_option("events", click.IntRange(min=10), "Events pre-loaded.")
@_size_option("users", click.IntRange(min=1), "Users they belong to.")
@_size_option(
    "concurrencies",
    click.IntRange(min=1),
    "Concurrency to measure, repeatable.",
    flag="--concurrency",
    multiple=True,
)
@click.option(
    "--latency",
    "latencies",
    type=click.Choice([str(ms) for ms in LATENCIES_MS]),
    multiple=True,
    help="Sink latency (ms) of the one-destination runs, repeatable [all].",
)
@_size_option("window", click.FloatRange(min=0.5), "Longest run, seconds.")
@_size_option("warmup", click.FloatRange(min=0), "Seconds of a run before it is measured.")
@_size_option("destinations", click.IntRange(min=1), "Destinations in one process.")
@_size_option("batch", click.IntRange(min=1), "Events each of them delivers.")
@_size_option(
    "tracing_rounds",
    click.IntRange(min=1),
    "Off-on pairs of the tracing comparison.",
    flag="--tracing-rounds",
)
@_size_option(
    "cpu_pairs",
    click.IntRange(min=0),
    "Further bare-dispatcher pairs for the CPU ratio's median (the gauge left unread).",
    flag="--cpu-pairs",
)
@click.option(
    "--only",
    type=click.Choice(SCENARIOS),
    multiple=True,
    help="Measure only this scenario, repeatable [all but transport].",
)
@click.option(
    "--max-buffered",
    type=click.IntRange(min=1),
    default=None,
    help="The destinations' max_buffered [the manifest's default].",
)
@click.option("--profile/--no-profile", default=True, show_default=True)
@options.tracing
@options.results_dir
@options.bootstrap_servers
def main(  # noqa: PLR0917 - click passes every option by position
    quick: bool,
    events: int | None,
    users: int | None,
    concurrencies: tuple[int, ...],
    latencies: tuple[str, ...],
    window: float | None,
    warmup: float | None,
    destinations: int | None,
    batch: int | None,
    tracing_rounds: int | None,
    cpu_pairs: int | None,
    only: tuple[str, ...],
    max_buffered: int | None,
    profile: bool,
    tracing: bool,
    results_dir: Path,
    bootstrap_servers: str,
) -> None:
    """Measure the dispatcher's deliveries/s against a bare aiohttp client; write a table."""
    sizes = QUICK if quick else FULL
    scenarios = set(only or DEFAULT_SCENARIOS)
    scenarios -= set() if profile else {"profile"}
    scenarios -= set() if tracing else {"tracing"}
    plan = Plan(
        bootstrap=bootstrap_servers,
        events=sizes.events if events is None else events,
        users=sizes.users if users is None else users,
        concurrencies=tuple(sorted(set(concurrencies))) or sizes.concurrencies,
        latencies=tuple(sorted({int(ms) for ms in latencies})) or LATENCIES_MS,
        window=sizes.window if window is None else window,
        warmup=sizes.warmup if warmup is None else warmup,
        destinations=sizes.destinations if destinations is None else destinations,
        batch=sizes.batch if batch is None else batch,
        tracing_rounds=sizes.tracing_rounds if tracing_rounds is None else tracing_rounds,
        cpu_pairs=sizes.cpu_pairs if cpu_pairs is None else cpu_pairs,
        scenarios=frozenset(scenarios),
        results_dir=results_dir,
        mode="quick" if quick else "full",
        max_buffered=max_buffered,
        concurrencies_given=bool(concurrencies),
    )
    started = time.monotonic()
    text = render(run_benchmark(plan))
    path = results_dir / results_name(plan)
    write_results(path, text)
    click.echo(text)
    click.echo(f"wrote {path} in {time.monotonic() - started:.0f}s", err=True)


if __name__ == "__main__":
    main()
