"""The dispatch benchmark's results as markdown: the one-destination runs (rates, then CPU),
their ratios to the goals and to the bare client, the CPU ceiling, then the sections of the
other scenarios."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.dispatch import (
    buffer_sizes,
    cpu_pairs,
    many,
    profile,
    scaling,
    tracing_cost,
    transport,
)
from benchmarks.dispatch.bounds import bound_by
from benchmarks.dispatch.buffer_sizes import BufferComparison
from benchmarks.dispatch.cpu_pairs import CpuPairs, cpu_ratio
from benchmarks.dispatch.many import ManyDestinations
from benchmarks.dispatch.plan import (
    BARE,
    CPU_BOUND_PERCENT,
    CPU_GOAL,
    DISPATCHER,
    IN_FLIGHT_GOAL,
    PARTITIONS,
    RATIO_GOAL,
    RATIO_LATENCY_MS,
    Plan,
)
from benchmarks.dispatch.profile import ProfileSummary
from benchmarks.dispatch.runs import Run
from benchmarks.dispatch.scaling import ProcessesComparison
from benchmarks.dispatch.tracing_cost import TracingComparison
from benchmarks.dispatch.transport import TransportComparison
from benchmarks.report import markdown_table

__all__ = ["Report", "render"]


@dataclass(frozen=True, slots=True)
class Report:
    plan: Plan
    machine: str
    sink: str
    """Which sink answered (``GO_SINK`` or ``AIOHTTP_SINK``)."""
    runs: list[Run]
    buffers: BufferComparison | None
    processes: ProcessesComparison | None
    many: ManyDestinations | None
    tracing: TracingComparison | None
    profile: ProfileSummary | None
    transport: TransportComparison | None = None
    cpu_pairs: CpuPairs = field(default_factory=lambda: CpuPairs({}))
    """The CPU ratio of the main runs' pairs and of the further ones."""


def render(report: Report) -> str:
    """The results as markdown."""
    sections = [_header(report)]
    if report.runs:
        sections += [
            _rates_table(report.runs),
            _cpu_table(report.runs),
            cpu_pairs.section(report.cpu_pairs),
            _ratios(report),
            _ceiling(report.runs),
        ]
    if report.buffers is not None:
        sections.append(buffer_sizes.section(report.buffers))
    if report.processes is not None:
        sections.append(scaling.section(report.processes))
    if report.many is not None:
        sections.append(many.section(report.many, report.runs))
    if report.tracing is not None:
        sections.append(tracing_cost.section(report.tracing))
    if report.profile is not None:
        sections.append(profile.section(report.profile))
    if report.transport is not None:
        sections.append(transport.section(report.transport))
    return "\n\n".join(sections) + "\n"


def _header(report: Report) -> str:
    plan = report.plan
    return "\n".join(
        [
            "# Dispatcher benchmark (issues 6 and 14)",
            "",
            f"Written by `python -m benchmarks.bench_dispatch` (`just bench-dispatch`), {plan.mode}"
            f" mode, scenarios: {', '.join(sorted(plan.scenarios))}.",
            "",
            f"Machine: {report.machine}. Other people's work may share this machine: compare the"
            " ratios, measured in the same run, more than the absolute rates.",
            "",
            f"Setup: {plan.events:,} events of {plan.users:,} users pre-loaded in a"
            f" {PARTITIONS}-partition topic. Sink: {report.sink}, in its own process, answering"
            " 204 after 0 or 20 ms. Dispatcher: `dispatcher --manifest <generated> --log-level"
            " WARNING` as a subprocess, a fresh consumer group per run from the earliest offset,"
            " one http destination with `max_connections` = `concurrency` and every other setting"
            " (the buffer's bounds above all) at the manifest's defaults"
            + ("" if plan.max_buffered is None else f", except `max_buffered: {plan.max_buffered}`")
            + ". Bare aiohttp: one"
            " process POSTing the same kind of body to the same sink from `concurrency` loops,"
            " with none of the dispatcher's work around each request: the ceiling. Each run is"
            f" measured from {plan.warmup:g} s after its first arrival at the sink (leaving"
            " start-up out: a new consumer group positions its partitions, connections open),"
            f" until all events arrived or {plan.window:g} s passed; its rate is the arrivals in"
            " that window over the time to the last one, by the sink's clock ('deliveries'"
            " counts the whole run). CPU is of the whole process (all threads) unless it says"
            " 'loop' (the main thread, where the event loop runs), as % of one core over the"
            " measured window, or per delivery. Mean in flight is the dispatcher's own"
            " `delivery_in_flight` gauge, scraped every 0.5 s, over the reads taken while at"
            " least `concurrency` users still had events to deliver (the goal's condition:"
            " no user has more than events / users of them, so while concurrency x events /"
            " users are undelivered, that many users wait); 'whole window' is over every read,"
            " the end of the run's drain included.",
            "",
            "What bounds the numbers: the machine's cores are shared by the client measured,"
            " the sink, the broker and the benchmark; 'machine busy' says how much of all of"
            " them was in use. At 20 ms the sink's latency bounds each slot to 50 deliveries/s,"
            " so a rate well below 50 x concurrency with a low 'in flight / concurrency' means"
            " the pipeline starved; at 0 ms the client's CPU per delivery bounds it (one event"
            " loop, one core at most).",
        ]
    )


def _find(runs: list[Run], client: str, latency_ms: int, concurrency: int) -> Run | None:
    wanted = (client, latency_ms, concurrency)
    return next((r for r in runs if (r.client, r.latency_ms, r.concurrency) == wanted), None)


def _bare_for(runs: list[Run], run: Run) -> Run | None:
    return _find(runs, BARE, run.latency_ms, run.concurrency)


def _ratio(numerator: Run | None, denominator: Run | None) -> float | None:
    if numerator is None or denominator is None or not denominator.rate:
        return None
    return numerator.rate / denominator.rate


def _shown(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rates_table(runs: list[Run]) -> str:
    header = [
        *("client", "sink latency ms", "concurrency", "deliveries", "seconds", "deliveries/s"),
        *("x bare", "mean in flight", "in flight / concurrency", "in flight, whole window"),
        "machine busy %",
        *("broker CPU %", "peak RSS MiB", "threads", "bound by", "ended by"),
    ]
    rows = [
        [
            run.client,
            str(run.latency_ms),
            str(run.concurrency),
            f"{run.deliveries:,}",
            f"{run.seconds:.2f}",
            f"{run.rate:,.0f}",
            _shown(_ratio(run, _bare_for(runs, run)), ".2f"),
            _shown(run.in_flight, ".0f"),
            _shown(run.in_flight_share, ".2f"),
            _shown(run.in_flight_whole, ".0f"),
            f"{100 * run.machine_busy:.0f}",
            "-" if run.broker_used is None else f"{run.percent(run.broker_used.cpu):.0f}",
            f"{run.peak_rss / (1 << 20):.0f}",
            str(run.threads),
            bound_by(run),
            run.ended_by,
        ]
        for run in runs
    ]
    return (
        "## Deliveries per second\n\n'x bare' is the rate over the bare client's at the same"
        " latency and concurrency. 'Bound by' is read from the figures: *sink latency* when the"
        " rate is at least 80% of concurrency / latency or 90% of the slots were in flight;"
        " *event loop CPU* when the client's"
        f" main thread ran (or waited for a core) {CPU_BOUND_PERCENT}% of the time or more,"
        " *shared cores* when it mostly waited, or when every core of the machine was at least"
        " 95% busy; *starved* when the dispatcher kept fewer than 90% of its slots in"
        " flight with neither of those.\n\n" + markdown_table(header, rows, left=(0, -2, -1))
    )


def _cpu_table(runs: list[Run]) -> str:
    header = [
        *("client", "sink latency ms", "concurrency", "CPU %", "loop CPU %", "loop waiting %"),
        *("CPU µs/delivery", "loop CPU µs/delivery", "x bare CPU µs/request"),
        *("sink CPU %", "sink CPU µs/request"),
    ]
    rows = [
        [
            run.client,
            str(run.latency_ms),
            str(run.concurrency),
            f"{run.percent(run.used.cpu):.0f}",
            f"{run.percent(run.used.loop_cpu):.0f}",
            f"{run.percent(run.used.loop_wait):.0f}",
            f"{run.per_delivery_us(run.used.cpu):,.0f}",
            f"{run.per_delivery_us(run.used.loop_cpu):,.0f}",
            "-" if run.client == BARE else _shown(cpu_ratio(run, _bare_for(runs, run)), ".2f"),
            f"{run.percent(run.sink_used.cpu):.0f}",
            f"{run.per_delivery_us(run.sink_used.cpu):,.0f}",
        ]
        for run in runs
    ]
    return (
        "## CPU per delivery\n\nProcess CPU (all threads) over the deliveries in the measured"
        " window; 'loop waiting' is the main thread ready to run but waiting for a core (the"
        " machine crowding it out); 'x bare' is over the bare client's CPU per request at the"
        f" same latency and concurrency (goal <= {CPU_GOAL:g}).\n\n"
        + markdown_table(header, rows, left=(0,))
    )


def _worst(
    runs: list[Run], value: Callable[[Run], float | None], *, highest: bool
) -> tuple[Run, float] | None:
    """The run whose ``value`` is highest (or lowest), with that value."""
    valued = [(run, v) for run in runs if (v := value(run)) is not None]
    if not valued:
        return None
    return (max if highest else min)(valued, key=lambda pair: pair[1])


def _ratios(report: Report) -> str:
    runs, top, at = report.runs, report.plan.top_concurrency, RATIO_LATENCY_MS
    ours = [r for r in runs if r.client == DISPATCHER]
    rows: list[list[str]] = []

    def row(name: str, value: float | None, goal: str, met: bool | None = None) -> None:
        shown = f"{value:,.2f}x" if value is not None else "n/a"
        rows.append([name, shown, goal, "" if met is None else ("yes" if met else "**no**")])

    speedup = _ratio(_find(runs, DISPATCHER, at, top), _find(runs, DISPATCHER, at, 1))
    row(
        f"dispatcher concurrency {top} / concurrency 1, {at} ms sink",
        speedup,
        f">= {RATIO_GOAL:g}x",
        None if speedup is None else speedup >= RATIO_GOAL,
    )
    row(
        f"bare aiohttp concurrency {top} / concurrency 1, {at} ms sink",
        _ratio(_find(runs, BARE, at, top), _find(runs, BARE, at, 1)),
        "reference",
    )
    for latency in sorted({r.latency_ms for r in ours}):
        at_latency = [r for r in ours if r.latency_ms == latency]
        lowest = _worst(at_latency, lambda r: r.in_flight_share, highest=False)
        name = f"lowest mean in flight / concurrency, {latency} ms sink"
        if lowest is None:
            row(name, None, f">= {IN_FLIGHT_GOAL:g}x")
        else:
            run, share = lowest
            row(
                f"{name} (concurrency {run.concurrency})",
                share,
                f">= {IN_FLIGHT_GOAL:g}x",
                share >= IN_FLIGHT_GOAL,
            )
        highest = _worst(at_latency, report.cpu_pairs.median_of, highest=True)
        name = (
            "highest median of dispatcher CPU per delivery / bare CPU per request,"
            f" {latency} ms sink"
        )
        if highest is None:  # every run was over before its measured window
            row(name, None, f"<= {CPU_GOAL:g}x")
        else:
            run, ratio = highest
            row(
                f"{name} (concurrency {run.concurrency})",
                ratio,
                f"<= {CPU_GOAL:g}x",
                ratio <= CPU_GOAL,
            )
        row(
            f"dispatcher / bare aiohttp deliveries/s, concurrency {top}, {latency} ms sink",
            _ratio(_find(runs, DISPATCHER, latency, top), _find(runs, BARE, latency, top)),
            "1x is the ceiling",
        )
    table = markdown_table(["ratio", "value", "goal", "met"], rows, left=(0, -2, -1))
    return f"## Ratios\n\n{table}\n\n{_goal_arithmetic(runs, top)}".rstrip()


def _goal_arithmetic(runs: list[Run], top: int) -> str:
    """What the ratio goal asks of the loop's CPU per delivery, next to what it uses."""
    one, fast = _find(runs, DISPATCHER, RATIO_LATENCY_MS, 1), _find(runs, DISPATCHER, 0, top)
    bare = _find(runs, BARE, 0, top)
    if one is None or fast is None or bare is None or not one.rate:
        return ""
    needed = RATIO_GOAL * one.rate
    return (
        f"{RATIO_GOAL:g}x at {RATIO_LATENCY_MS} ms means {needed:,.0f} deliveries/s from one"
        f" event loop: at most {1e6 / needed:,.0f} µs of loop CPU per delivery on a core of its"
        f" own. The dispatcher used {fast.per_delivery_us(fast.used.loop_cpu):,.0f} µs"
        f" (concurrency {top}, 0 ms sink); the bare aiohttp client"
        f" {bare.per_delivery_us(bare.used.loop_cpu):,.0f} µs per request."
    )


def _ceiling(runs: list[Run]) -> str:
    """The CPU-bound case: the top concurrency with the 0 ms sink, next to the bare client."""
    top = max(r.concurrency for r in runs)
    bound, bare = _find(runs, DISPATCHER, 0, top), _find(runs, BARE, 0, top)
    zero = [r for r in runs if r.client == DISPATCHER and r.latency_ms == 0]
    if bound is None or bare is None or not zero:
        return "## CPU ceiling (0 ms sink)\n\nNot measured."
    fastest = max(zero, key=lambda r: r.rate)
    loop_us, bare_us = (r.per_delivery_us(r.used.loop_cpu) for r in (bound, bare))
    busy = bound.percent(bound.used.loop_cpu + bound.used.loop_wait)
    verdict = (
        "CPU-bound" if busy >= CPU_BOUND_PERCENT else "not CPU-bound: something else bounds it"
    )
    return "\n".join(
        [
            "## CPU ceiling (0 ms sink)",
            "",
            f"At concurrency {top} the dispatcher delivered **{bound.rate:,.0f}/s**; its event"
            f" loop ran {bound.percent(bound.used.loop_cpu):.0f}% of the time and waited for a"
            f" core another {bound.percent(bound.used.loop_wait):.0f}% ({busy:.0f}% busy:"
            f" {verdict}; the threshold is {CPU_BOUND_PERCENT}%), with the machine"
            f" {100 * bound.machine_busy:.0f}% busy. The fastest 0 ms run was"
            f" {fastest.rate:,.0f}/s at concurrency {fastest.concurrency}.",
            "",
            f"Loop CPU per delivery: **{loop_us:,.0f} µs**, so one core given to the loop alone"
            f" tops out near **{1e6 / loop_us if loop_us else 0:,.0f} deliveries/s**. The bare"
            f" aiohttp client spends {bare_us:,.0f} µs per request (near"
            f" {1e6 / bare_us if bare_us else 0:,.0f}/s): the dispatcher's own work per delivery"
            f" is {loop_us - bare_us:,.0f} µs on top. CPU per delivery suffers less from the"
            " machine's other users than the rate does.",
        ]
    )
