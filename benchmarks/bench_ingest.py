"""Issue 3: how fast ingest takes events, next to what HTTP and Kafka allow on this machine;
issue 7: what tracing every request costs it; issue 14: what a second worker process adds.

Measurements in one run, never two at once, so they do not compete for the CPU:

* **HTTP ceiling**: the same Litestar app (same routes, validation, request bound and error
  mapping) with a producer stand-in that acknowledges at once: no Kafka at all;
* **ingest**: the real ``ingest`` command, acknowledged by the local broker (``acks=all``);
* **ingest, 2 workers**: the same command with ``--workers 2`` (issue 14);
* **ingest, tracing on**: the same command with every trace sampled and exported over OTLP to
  a span counter in a process of its own;
* **Kafka ceiling**: a bare confluent-kafka producer loop with ingest's producer settings,
  no HTTP, records pre-encoded.

Each server runs as its own uvicorn process; this process is the client. Each server is warmed
up, then loaded in turns (``--rounds``, alternating between the servers) so that a change in
the shared machine's background load hits all alike: ``--concurrency`` requests in flight. Then
one client sends one request at a time, for single-request latency. CPU is read from ``/proc``
for the client, each server and (when it is the local native broker) Kafka. Results go to
``benchmarks/results/ingest.md``. It is a benchmark, not a test: nothing here judges the numbers.

    python -m benchmarks.bench_ingest            # about a minute and a half
    python -m benchmarks.bench_ingest --quick    # smoke: a few seconds per part
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import click

from benchmarks import options
from benchmarks.ingest.ceilings import kafka_ceiling
from benchmarks.ingest.load import load_in_turns, one_at_a_time
from benchmarks.ingest.report import Results, render
from benchmarks.ingest.targets import INGEST_TRACED, start_targets
from benchmarks.kafka import Scratch, local_broker_pid
from benchmarks.measure import ProcessWatch, read_metric
from benchmarks.report import machine_facts, write_results
from benchmarks.span_counter import span_counter
from ingest import IngestSettings

__all__ = ["main"]

PARTITIONS = 12
ACCEPTED_METRIC = "ingest_events_accepted_total"


@click.command()
@options.bootstrap_servers
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight.")
@click.option("--window", default=12.0, show_default=True, help="Seconds measured per target.")
@click.option("--rounds", default=4, show_default=True, help="Turns the window is split into.")
@click.option("--warmup", default=1.5, show_default=True, help="Seconds before measuring.")
@click.option("--single", default=400, show_default=True, help="One-at-a-time requests.")
@options.tracing
@options.results_dir
@click.option("--quick", is_flag=True, help="Smoke run: short windows, few requests.")
def main(
    *,
    bootstrap_servers: str,
    concurrency: int,
    window: float,
    rounds: int,
    warmup: float,
    single: int,
    tracing: bool,
    results_dir: Path,
    quick: bool,
) -> None:
    """Measure PUT /events throughput and latency beside the HTTP and Kafka ceilings."""
    if quick:
        window, rounds, warmup, single = 2.0, 2, 0.5, 50
    machine = machine_facts("ingest", "eventlog")
    broker_pid = local_broker_pid(bootstrap_servers)
    broker = ProcessWatch(broker_pid) if broker_pid is not None else None
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    settings = IngestSettings(bootstrap_servers=bootstrap_servers, topic=topic)
    with (
        Scratch(bootstrap_servers) as kafka,
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
        ExitStack() as stack,
    ):
        kafka.topic(topic, partitions=PARTITIONS)
        spans = stack.enter_context(span_counter(Path(tmp))) if tracing else None
        endpoint = spans.base_url if spans is not None else None
        targets = start_targets(stack, settings, Path(tmp), span_endpoint=endpoint)
        click.echo(f"loading {', '.join(t.name for t in targets)} in turn", err=True)
        loads = asyncio.run(
            load_in_turns(
                targets,
                concurrency=concurrency,
                warmup=warmup,
                window=window,
                rounds=rounds,
                broker=broker,
            )
        )
        singles = {t.name: asyncio.run(one_at_a_time(t, requests=single)) for t in targets}
        traced = next((t for t in targets if t.name == INGEST_TRACED), None)
        traced_accepted = None
        if traced is not None:
            traced_accepted = read_metric(traced.metrics_url, ACCEPTED_METRIC)
            traced.process.stop()  # it flushes its spans on the way out
        span_counts = spans.counts() if spans is not None else None
        stack.close()  # the servers stop before the Kafka ceiling runs
        click.echo("kafka ceiling: producing", err=True)
        kafka_rate, kafka_failed = kafka_ceiling(
            bootstrap_servers, topic, seconds=window / rounds, cap=1_000_000
        )
    results = Results(
        machine=machine,
        concurrency=concurrency,
        window=window,
        loads=loads,
        singles=singles,
        kafka_rate=kafka_rate,
        kafka_failed=kafka_failed,
        spans=span_counts,
        traced_accepted=traced_accepted,
    )
    text = render(results)
    write_results(results_dir / "ingest.md", text)
    click.echo(text)


if __name__ == "__main__":
    main()
