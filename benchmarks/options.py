"""Command-line options every benchmark takes, spelled once."""

from __future__ import annotations

from pathlib import Path

import click

from benchmarks.report import RESULTS_DIR

__all__ = ["bootstrap_servers", "results_dir", "tracing"]

bootstrap_servers = click.option(
    "--bootstrap-servers",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    help="The Kafka broker to use ($KAFKA_BOOTSTRAP_SERVERS).",
)
results_dir = click.option(
    "--results-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=RESULTS_DIR,
    show_default=True,
    help="Where the results go.",
)
tracing = click.option(
    "--tracing/--no-tracing",
    default=True,
    show_default=True,
    help="Also measure the service with tracing on (every trace sampled and exported).",
)
