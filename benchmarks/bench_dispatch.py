"""Issue 6: how fast one dispatcher process delivers, measured against what the machine allows.

Everything runs on loopback against the shared broker, each part in its own process so that none
shares a GIL with another:

* a **sink** (``benchmarks.dispatch.sink``, aiohttp) answers ``POST /latency/<ms>[/<tag>]`` with
  204 after ``ms`` milliseconds and counts what arrived;
* the **dispatcher**, run as ``dispatcher --manifest <generated> --log-level WARNING``, delivers
  events pre-loaded into a fresh topic to one http destination at each concurrency, a fresh
  consumer group per run, from the earliest offset;
* the **ceiling**: a bare aiohttp client (``benchmarks.dispatch.bare_client``) POSTs to the same
  sink at the same concurrency, with none of the dispatcher's work around each request;
* one dispatcher process hosting many destinations, each delivering a small pre-loaded batch;
* the dispatcher at concurrency 64 with tracing off and on (issue 7), exporting to a span counter;
* one more dispatcher run under pyinstrument, to say what bounds it when it is CPU-bound.

The machine is small and shared, so absolute numbers are noisy: rates are reported next to the
bare client's, measured in the same run. A rate is (deliveries - 1) over the time from the first
to the last arrival at the sink; a run ends at its event count or its time window, whichever
comes first. It is a benchmark, not a test: nothing here judges the numbers.

    python -m benchmarks.bench_dispatch            # full: about 4 minutes
    python -m benchmarks.bench_dispatch --quick    # smoke: tiny numbers, under a minute
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks import options
from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.many import many_destinations
from benchmarks.dispatch.plan import FULL, LATENCIES_MS, QUICK, RATIO_LATENCY_MS, Plan
from benchmarks.dispatch.profile import profiled
from benchmarks.dispatch.report import Report, render
from benchmarks.dispatch.runs import Run
from benchmarks.dispatch.tracing_cost import compare_tracing
from benchmarks.report import machine_facts, write_results

__all__ = ["main", "run_benchmark"]

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def run_benchmark(plan: Plan) -> Report:
    """Every measurement of the plan, in one go, with one sink and one pre-loaded topic."""
    machine = machine_facts("dispatcher", "eventlog")
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, Bench(plan, Path(tmp)) as b:
        click.echo(f"pre-loading {plan.events} events of {plan.users} users ...", err=True)
        topic = b.fresh_topic("events", events=plan.events, users=plan.users)
        runs: list[Run] = []
        for latency in LATENCIES_MS:
            # The ceiling is measured right before the runs compared with it.
            runs.append(b.bare(latency, plan.top_concurrency))
            if latency == RATIO_LATENCY_MS:
                runs.append(b.bare(latency, 1))
            runs += [b.dispatcher(topic, latency, c) for c in plan.concurrencies]
        tracing = None
        if plan.tracing:
            click.echo("tracing off and on ...", err=True)
            tracing = compare_tracing(b, topic)
        profile = None
        if plan.profile:
            click.echo("profiling the dispatcher ...", err=True)
            profile = profiled(b, topic)
        click.echo(f"{plan.destinations} destinations in one process ...", err=True)
        many = many_destinations(b)
    return Report(plan, machine, runs, many, tracing, profile)


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
@_size_option("window", click.FloatRange(min=0.5), "Longest run, seconds.")
@_size_option("destinations", click.IntRange(min=1), "Destinations in one process.")
@_size_option("batch", click.IntRange(min=1), "Events each of them delivers.")
@click.option("--profile/--no-profile", default=True, show_default=True)
@options.tracing
@options.results_dir
@options.bootstrap_servers
def main(  # noqa: PLR0917 - click passes every option by position
    quick: bool,
    events: int | None,
    users: int | None,
    concurrencies: tuple[int, ...],
    window: float | None,
    destinations: int | None,
    batch: int | None,
    profile: bool,
    tracing: bool,
    results_dir: Path,
    bootstrap_servers: str,
) -> None:
    """Measure the dispatcher's deliveries/s against a bare aiohttp client; write a table."""
    sizes = QUICK if quick else FULL
    plan = Plan(
        bootstrap=bootstrap_servers,
        events=sizes.events if events is None else events,
        users=sizes.users if users is None else users,
        concurrencies=tuple(sorted(set(concurrencies))) or sizes.concurrencies,
        window=sizes.window if window is None else window,
        destinations=sizes.destinations if destinations is None else destinations,
        batch=sizes.batch if batch is None else batch,
        profile=profile,
        tracing=tracing,
        results_dir=results_dir,
        mode="quick" if quick else "full",
    )
    started = time.monotonic()
    text = render(run_benchmark(plan))
    write_results(results_dir / "dispatch.md", text)
    click.echo(text)
    click.echo(
        f"wrote {results_dir / 'dispatch.md'} in {time.monotonic() - started:.0f}s", err=True
    )


if __name__ == "__main__":
    main()
