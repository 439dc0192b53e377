"""``python -m reliability.soak`` (``just soak``, 30 minutes, not in CI): steady load on the
3-node cluster, a destination that is up 60 s and down 30 s over and over, and a broker
killed and restarted every 5 minutes. Every 10 s it samples the resident memory, open file
descriptors and threads of ingest and the dispatcher, and the consumer lag; it draws them to
``docs/soak.png`` (they must stay flat) and writes lost (must be 0) and duplicated to
``docs/soak.md``."""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import psutil

from localkafka.cluster import NODES, Cluster
from reliability.check import Verdict, judge
from reliability.load import Load
from reliability.scenarios import wait_until_settled
from reliability.sink import Sink
from reliability.system import Service, System

__all__ = ["Sample", "draw", "main", "summary"]

log = logging.getLogger("reliability")
DOCS = Path(__file__).resolve().parents[1] / "docs"
DESTINATIONS = ("steady", "flapping")


@dataclass(frozen=True)
class Sample:
    """One sampling moment."""

    minute: float
    """Minutes since the load started."""
    rss_mib: dict[str, float]
    fds: dict[str, int]
    threads: dict[str, int]
    lag: int | None
    """Events not yet committed, summed over the destinations (None: not known then)."""


def _sample(start: float, services: list[Service], system: System) -> Sample:
    rss, fds, threads = {}, {}, {}
    for service in services:
        try:
            process = psutil.Process(service.pid)
            rss[service.name] = process.memory_info().rss / 2**20
            fds[service.name] = process.num_fds()
            threads[service.name] = process.num_threads()
        except psutil.Error:  # between a crash and check_alive: a gap in the line
            continue
    return Sample((time.monotonic() - start) / 60, rss, fds, threads, system.lag())


def draw(samples: list[Sample], restarts: list[float], path: Path) -> None:
    """Four panels over time (RSS, file descriptors, threads, lag), a dotted line at each
    broker restart."""
    import matplotlib  # noqa: PLC0415 - only the soak needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    panels: list[tuple[str, Callable[[Sample], Mapping[str, float]]]] = [
        ("resident memory (MiB)", lambda s: s.rss_mib),
        ("open file descriptors", lambda s: s.fds),
        ("threads", lambda s: s.threads),
    ]
    names = sorted({n for s in samples for n in s.rss_mib})
    for axis, (title, values) in zip(axes, panels, strict=False):
        for name in names:
            points = [(s.minute, values(s)[name]) for s in samples if name in values(s)]
            axis.plot([p[0] for p in points], [p[1] for p in points], label=name)
        axis.set_ylabel(title)
        axis.set_ylim(bottom=0)
        axis.legend(loc="upper left")
    lagged = [(s.minute, s.lag) for s in samples if s.lag is not None]
    axes[3].plot([p[0] for p in lagged], [p[1] for p in lagged], label="consumer lag")
    axes[3].set_ylabel("lag (events)")
    axes[3].set_xlabel("minutes")
    for axis in axes:
        for minute in restarts:
            axis.axvline(minute, linestyle=":", color="grey")
    figure.suptitle("soak: steady load, a flapping destination, a broker restart every 5 min")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def summary(
    verdict: Verdict, samples: list[Sample], minutes: float, rate: float, *, failure: str = ""
) -> str:
    first, last = samples[0], samples[-1]
    lines = [
        "# Soak",
        "",
        f"`./just soak`: {minutes:.0f} minutes of {rate:.0f} events/s on the 3-node cluster;",
        "destination `flapping` is up 60 s and down (503) 30 s in turn, and a broker is",
        "SIGKILLed and restarted every 5 minutes (dotted lines).",
        "",
        "![RSS, file descriptors, threads and lag over the soak](soak.png)",
        "",
        *([f"Stopped early, at minute {last.minute:.0f}: {failure}", ""] if failure else []),
        "| accepted | delivered | lost | duplicated | order violations |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {verdict.accepted} | {verdict.delivered} | **{verdict.lost}** "
        f"| {verdict.duplicated} | {verdict.order_violations} |",
        "",
        "| process | RSS first → last (MiB) | fds first → last | threads first → last |",
        "| --- | --- | --- | --- |",
    ]
    for name in sorted(last.rss_mib):
        lines.append(
            f"| {name} | {first.rss_mib.get(name, 0):.0f} → {last.rss_mib[name]:.0f} "
            f"| {first.fds.get(name, 0)} → {last.fds[name]} "
            f"| {first.threads.get(name, 0)} → {last.threads[name]} |"
        )
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--minutes", default=30.0, show_default=True, help="How long the load runs.")
@click.option("--users", default=200, show_default=True)
@click.option("--rate", default=200.0, show_default=True, help="Events per second in all.")
@click.option("--restart-every", default=300.0, show_default=True, help="Seconds between restarts.")
@click.option("--sample-every", default=10.0, show_default=True, help="Seconds between samples.")
@click.option("--docs", type=click.Path(path_type=Path, file_okay=False), default=DOCS)
def main(  # noqa: PLR0917 - click passes the options positionally
    minutes: float, users: int, rate: float, restart_every: float, sample_every: float, docs: Path
) -> None:
    """The soak; exit 1 if an accepted event was lost or per-user order broken."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cluster = Cluster.from_environment()
    cluster.up(timeout=180)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    samples: list[Sample] = []
    restarts: list[float] = []
    failure = ""
    with Sink(flap_up=60, flap_down=30) as sink:
        destinations = [
            {"name": "steady", "type": "http", "url": sink.url("steady")},
            {"name": "flapping", "type": "http", "url": sink.url("flapping", "flap")},
        ]
        with System(cluster, workdir, "soak", destinations) as system:
            ingest = system.start_ingest()
            dispatcher = system.start_dispatcher()
            with Load(system.ingest_url, users=users, rate=rate) as load:
                start = time.monotonic()
                end = start + minutes * 60
                next_restart = start + restart_every
                node = 1
                while time.monotonic() < end:
                    try:
                        system.check_alive()
                    except RuntimeError as exc:  # the picture up to here is still worth having
                        failure = str(exc).splitlines()[0]
                        log.error("soak stopped early: %s", failure)
                        break
                    samples.append(_sample(start, [ingest, dispatcher], system))
                    if time.monotonic() >= next_restart:
                        log.info("SIGKILL node %d, then restart it", node)
                        restarts.append((time.monotonic() - start) / 60)
                        cluster.signal_node(node, signal.SIGKILL)
                        cluster.up(timeout=180)
                        node = node % NODES + 1
                        next_restart += restart_every
                    time.sleep(max(0.0, start + len(samples) * sample_every - time.monotonic()))
            settled = not failure and wait_until_settled(system, sink, load, 300)
            verdict = judge(load.accepted(), sink.deliveries(), DESTINATIONS)
    docs.mkdir(parents=True, exist_ok=True)
    draw(samples, restarts, docs / "soak.png")
    (docs / "soak.md").write_text(summary(verdict, samples, minutes, rate, failure=failure))
    click.echo(
        f"accepted={verdict.accepted} lost={verdict.lost} duplicated={verdict.duplicated} "
        f"order_violations={verdict.order_violations} settled={settled}; "
        f"wrote {docs / 'soak.png'} and soak.md; logs in {workdir}"
    )
    sys.exit(0 if verdict.passed and settled else 1)


if __name__ == "__main__":
    main()
